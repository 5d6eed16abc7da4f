import { waitFor } from '@service-foundry/core';
import { BrokerError } from './errors.js';

export interface FollowOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  timeoutMs: number;
  intervalMs: number;
}

/** Exit code after Ctrl-C, as shells report a process ended by SIGINT. */
export const interruptedExitCode = 130;

/** The broker did not answer at all (no HTTP status): worth asking again. */
const unreachable = (error: unknown) => error instanceof BrokerError && error.status === 0;

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
    return await waitFor(step, {
      description: options.what,
      timeoutMs: options.timeoutMs,
      intervalMs: options.intervalMs,
      signal: interrupt.signal,
      retryOn: unreachable,
    });
  } catch (error) {
    if (interrupt.signal.aborted && (error as Error).name === 'AbortError') return undefined;
    throw error;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
