import { setTimeout as delay } from 'node:timers/promises';
import { TimeoutError } from '@service-foundry/core';
import { BrokerError } from './errors.js';

export interface FollowOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  timeoutMs: number;
  intervalMs: number;
}

/** Exit code after Ctrl-C, as shells report a process ended by SIGINT. */
export const interruptedExitCode = 130;

/**
 * Polls `step` until it returns a value. Ctrl-C stops the following, not the work the
 * cluster does (the controller and agents carry on): the result is then `undefined` and
 * the caller says how to look again. A broker that cannot be reached for a moment is
 * asked again until the deadline; any answer it gives with an error ends the wait.
 */
export async function follow<T>(step: () => Promise<T | undefined>, options: FollowOptions): Promise<T | undefined> {
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  try {
    const deadline = Date.now() + options.timeoutMs;
    let unreachable: BrokerError | undefined;
    for (;;) {
      try {
        const value = await step();
        if (value !== undefined) return value;
      } catch (error) {
        if (!(error instanceof BrokerError && error.status === 0)) throw error;
        unreachable = error;
      }
      if (Date.now() >= deadline) {
        throw new TimeoutError(options.what, options.timeoutMs, unreachable ? { cause: unreachable } : undefined);
      }
      try {
        await delay(options.intervalMs, undefined, { signal: interrupt.signal });
      } catch {
        return undefined;
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
