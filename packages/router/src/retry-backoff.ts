const firstRetryMs = 200;
const maxRetryMs = 5000;

/**
 * How long to wait before the next try of something that failed `failures` times in a row
 * (a port that cannot be bound, a route process that exited): 200 ms doubling to 5 s.
 */
export function retryDelayMs(failures: number): number {
  return Math.min(maxRetryMs, firstRetryMs * 2 ** (failures - 1));
}

/** Log the first failure, then every tenth: the status shows the failure all along. */
export function logThisFailure(failures: number): boolean {
  return failures === 1 || failures % 10 === 0;
}
