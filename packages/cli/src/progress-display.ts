/**
 * Progress on stderr, the one display of the CLI: transfers (relocation, backup, restore)
 * as one line with a bar, and long waits as a status line with the time waited. Pure
 * rendering here, and a small display that redraws the line on a terminal and logs steps
 * elsewhere.
 */

import { formatBytes, formatRate, formatSeconds } from './format.js';

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

const minBar = 10;
const maxBar = 30;

/** Whole percent of the planned bytes; 100 only once everything is there. */
function progressPercent(bytes: number, plannedBytes: number | undefined): number | undefined {
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
  readonly #started = Date.now();
  #drawn = false;
  #label: string | undefined;
  #quarter = -1;
  #status: string | undefined;

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

  /**
   * A long wait's state with the time waited so far (`create pg1: in progress (4.2 s)`):
   * redrawn on a terminal, logged when the message changes elsewhere.
   */
  status(message: string): void {
    const line = `${message} (${this.#elapsed()})`;
    if (this.#tty) {
      this.stream.write(`\r\x1b[K${line}`);
      this.#drawn = true;
    } else if (message !== this.#status) {
      this.stream.write(`${line}\n`);
    }
    this.#status = message;
  }

  /** The line that ends a wait, with the time it took. */
  done(message: string): void {
    this.stream.write(`${this.#tty ? '\r\x1b[K' : ''}${message} (${this.#elapsed()})\n`);
    this.#drawn = false;
  }

  #elapsed(): string {
    return formatSeconds(Date.now() - this.#started);
  }

  /** Removes the redrawn line (before a note or the summary); the next bar starts afresh. */
  clear(): void {
    if (this.#drawn) this.stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
