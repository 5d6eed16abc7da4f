/**
 * Progress of volume transfers (relocation, backup, restore) as one line: pure formatting
 * here, and a small display that redraws the line on a terminal and logs steps elsewhere.
 */

/** What one progress line shows; sizes in bytes, throughput in MB/s (10^6 bytes). */
export interface ProgressFigures {
  label: string;
  bytes: number;
  plannedBytes?: number;
  files: number;
  plannedFiles?: number;
  mbPerSecond: number;
  /** Columns the line may take. */
  width: number;
}

const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
const minBar = 10;
const maxBar = 30;

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

/** Whole percent of the planned bytes; 100 only once everything is there. */
export function progressPercent(bytes: number, plannedBytes: number | undefined): number | undefined {
  if (plannedBytes === undefined || !(plannedBytes > 0)) return undefined;
  if (bytes >= plannedBytes) return 100;
  return Math.min(99, Math.max(0, Math.round((bytes / plannedBytes) * 100)));
}

function fit(line: string, width: number): string {
  if (line.length <= width) return line;
  return width > 1 ? `${line.slice(0, width - 1)}…` : line.slice(0, Math.max(0, width));
}

/**
 * `pre-copy [#####.....] 512.0 MB / 1.07 GB  48%  231 MB/s  1020/2048 files`. The bar
 * takes the room the width leaves (10 to 30 cells) and is left out when there is no
 * plan to measure against or too little room; the line never exceeds the width.
 */
export function renderProgressLine(f: ProgressFigures): string {
  const percent = progressPercent(f.bytes, f.plannedBytes);
  const size =
    percent === undefined ? formatBytes(f.bytes) : `${formatBytes(f.bytes)} / ${formatBytes(f.plannedBytes ?? 0)}`;
  const files = f.plannedFiles === undefined ? `${f.files} files` : `${f.files}/${f.plannedFiles} files`;
  const tail = [size, percent === undefined ? '' : `${percent}%`, formatRate(f.mbPerSecond), files]
    .filter(Boolean)
    .join('  ');
  const plain = `${f.label} ${tail}`;
  const room = f.width - plain.length - 3; // ` [` + `]` around the cells
  if (percent === undefined || room < minBar) return fit(plain, f.width);
  const cells = Math.min(maxBar, room);
  const filled = percent === 100 ? cells : Math.min(cells - 1, Math.round((cells * f.bytes) / (f.plannedBytes ?? 1)));
  return `${f.label} [${'#'.repeat(filled)}${'.'.repeat(cells - filled)}] ${tail}`;
}

/** The stream a display writes to: stderr, or anything with the same shape (tests). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Draws progress on stderr. On a terminal: one line redrawn in place with `\r`, notes
 * printed above it. Elsewhere (CI logs, pipes): each note, and a progress line when the
 * label changes or the transfer passes another quarter of its plan.
 */
export class ProgressDisplay {
  readonly #tty: boolean;
  #drawn = false;
  #label: string | undefined;
  #quarter = -1;

  constructor(private readonly stream: ProgressStream = process.stderr) {
    this.#tty = stream.isTTY === true;
  }

  /** A line that stays (a phase change). */
  note(line: string): void {
    this.clear();
    this.stream.write(`${line}\n`);
  }

  bar(figures: Omit<ProgressFigures, 'width'>): void {
    const width = Math.max(20, (this.stream.columns ?? 80) - 1);
    if (this.#tty) {
      this.stream.write(`\r\x1b[K${renderProgressLine({ ...figures, width })}`);
      this.#drawn = true;
      return;
    }
    const percent = progressPercent(figures.bytes, figures.plannedBytes);
    const quarter = percent === undefined ? 0 : Math.floor(percent / 25);
    if (figures.label === this.#label && quarter <= this.#quarter) return;
    this.#label = figures.label;
    this.#quarter = quarter;
    this.stream.write(`${renderProgressLine({ ...figures, width: 200 })}\n`);
  }

  /** Removes the redrawn line (before a note or the summary); the next bar starts afresh. */
  clear(): void {
    if (this.#drawn) this.stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
