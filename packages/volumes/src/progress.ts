/** How far a transfer has come, for progress bars and transfer events. */
export interface TransferProgress {
  /** File content bytes moved so far. */
  bytes: number;
  files: number;
  /** What the sender announced, once its header arrived (a live volume may end a little short). */
  plannedBytes: number | undefined;
  plannedFiles: number | undefined;
  elapsedMs: number;
  /** Content throughput since the start, in MB/s (10^6 bytes). */
  mbPerSecond: number;
  done: boolean;
}

export type ProgressListener = (progress: TransferProgress) => void;

export function megabytesPerSecond(bytes: number, elapsedMs: number): number {
  return elapsedMs > 0 ? Math.round((bytes / 1e6 / (elapsedMs / 1000)) * 10) / 10 : 0;
}

/** Counts bytes and files and reports to a listener at most every `intervalMs` (and at the end). */
export class ProgressMeter {
  readonly #listener: ProgressListener | undefined;
  readonly #intervalMs: number;
  readonly #startedAt = Date.now();
  #lastReportAt = 0;
  #bytes = 0;
  #files = 0;
  #plannedBytes: number | undefined;
  #plannedFiles: number | undefined;

  constructor(listener?: ProgressListener, intervalMs = 250) {
    this.#listener = listener;
    this.#intervalMs = intervalMs;
  }

  plan(bytes: number, files: number): void {
    this.#plannedBytes = bytes;
    this.#plannedFiles = files;
    this.#report(false, true);
  }

  add(bytes: number, files: number): void {
    this.#bytes += bytes;
    this.#files += files;
    // Called per chunk: only build a report when one is due.
    if (this.#listener && Date.now() - this.#startedAt - this.#lastReportAt >= this.#intervalMs) {
      this.#report(false, false);
    }
  }

  finish(): TransferProgress {
    return this.#report(true, true);
  }

  current(done = false): TransferProgress {
    const elapsedMs = Date.now() - this.#startedAt;
    return {
      bytes: this.#bytes,
      files: this.#files,
      plannedBytes: this.#plannedBytes,
      plannedFiles: this.#plannedFiles,
      elapsedMs,
      mbPerSecond: megabytesPerSecond(this.#bytes, elapsedMs),
      done,
    };
  }

  #report(done: boolean, force: boolean): TransferProgress {
    const progress = this.current(done);
    if (this.#listener && (force || progress.elapsedMs - this.#lastReportAt >= this.#intervalMs)) {
      this.#lastReportAt = progress.elapsedMs;
      try {
        this.#listener(progress);
      } catch {
        // A failing progress bar must not fail the transfer.
      }
    }
    return progress;
  }
}
