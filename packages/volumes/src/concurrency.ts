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
