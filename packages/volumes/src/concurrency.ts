import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * File system calls go through libuv's thread pool; one at a time, a tree of thousands of
 * entries costs thousands of round trips. Running a bounded number at once keeps the
 * pool busy without flooding it.
 */
export const fsConcurrency = 32;

/** Runs `work` on every item, at most `limit` at a time; resolves with results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** How long synchronous metadata calls may hold the event loop before it gets a turn. */
export const metadataSliceMs = 4;

/**
 * Metadata walks (scan, hardlink copy, verification) call the synchronous fs functions:
 * `lstat`, `link` or `readdir` on cached metadata take a few µs in the calling thread
 * against 20–40 µs through the thread pool and a promise each, and a relocation's final
 * round walks the whole volume several times while the service is down (a 1,850-entry
 * tree: scan 10 ms instead of 40–80 ms). So that lease renewals, watches and other
 * requests still run, the walk yields to the event loop once `metadataSliceMs` passed:
 * the loop is held at most that long plus one call.
 */
export class EventLoopSlices {
  #since = performance.now();

  /** Call between two synchronous calls; resolves at once unless the slice is used up. */
  async tick(): Promise<void> {
    if (performance.now() - this.#since < metadataSliceMs) return;
    await nextTurn();
    this.#since = performance.now();
  }
}
