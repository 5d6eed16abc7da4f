/** How the CLI writes sizes, rates and durations, in tables, summaries and progress lines alike. */

const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Decimal units like the transfer figures: `950 B`, `1.07 GB`, `512.0 MB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1000) return `${Math.max(0, Math.round(bytes || 0))} B`;
  let unit = 0;
  let value = bytes;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  let text = value < 10 ? value.toFixed(2) : value.toFixed(1);
  // 999.96 MB rounds to "1000.0": say 1.00 GB instead.
  if (Number(text) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
    text = value.toFixed(2);
  }
  return `${text} ${units[unit]}`;
}

export function formatRate(mbPerSecond: number): string {
  const rate = Number.isFinite(mbPerSecond) ? Math.max(0, mbPerSecond) : 0;
  return `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} MB/s`;
}

/** `4.6 s`; downtimes take two digits (`0.84 s`). */
export function formatSeconds(ms: number, digits = 1): string {
  return `${(ms / 1000).toFixed(digits)} s`;
}
