/** 4096 → "4 GiB", 1536 → "1536 MB": sizes as operators read them. */
export function formatMb(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MB`;
}

/** 2000 → "2 cpu", 500 → "500m cpu". */
export function formatCpu(millis: number): string {
  return millis % 1000 === 0 ? `${millis / 1000} cpu` : `${millis}m cpu`;
}
