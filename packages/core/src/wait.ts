import { setTimeout as delay } from 'node:timers/promises';
import { TimeoutError } from './errors.js';

export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  description: string;
  /** @default 30_000 */
  timeoutMs?: number;
  /** @default 100 */
  intervalMs?: number;
  signal?: AbortSignal;
  /**
   * Which errors thrown by `probe` mean "not yet"; any other ends the wait at once, thrown
   * as it is.
   * @default every error
   */
  retryOn?: (error: unknown) => boolean;
}

/**
 * Polls `probe` until it returns a value other than `undefined`/`false`, or the deadline
 * passes. Errors thrown by `probe` count as "not yet" (those `retryOn` accepts, when given)
 * and the last one becomes the cause of the timeout, so a caller sees why the condition
 * never held.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (options.retryOn && !options.retryOn(error)) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new TimeoutError(options.description, timeoutMs, lastError ? { cause: lastError } : undefined);
    }
    await delay(Math.min(intervalMs, Math.max(1, deadline - Date.now())), undefined, {
      signal: options.signal,
    });
  }
}
