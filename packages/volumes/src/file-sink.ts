import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { BufferPool } from './buffer-pool.js';

/** Received bytes are copied into batches of this size and written one batch per call. */
const batchBytes = 1024 * 1024;
/** Batches kept for reuse once written: a transfer's working set, not a GiB of garbage. */
const batches = new BufferPool(batchBytes, 16);

/** Bytes copied but not yet written, across the files of one receiver (back-pressure). */
export interface WriteBacklog {
  queued: number;
  /** Called after a batch of `written` bytes was written (0: dropped): the backlog shrank. */
  shrank(written: number): void;
}

/**
 * One received file's content: each slice is hashed where it lies and copied into a pooled
 * batch (the read buffer it came in is reused at once), and full batches are written in
 * order, one write at a time, once the file is open. `end()` says the content is complete;
 * `written` settles when every byte is on the file.
 */
export class FileSink {
  readonly #hash = createHash('sha256');
  readonly #backlog: WriteBacklog;
  #batch: Buffer | undefined;
  #fill = 0;
  #received = 0;
  #written = 0;
  #sha256: string | undefined;
  #writes: Promise<void>;
  #failed = false;
  #openHandle: (handle: FileHandle) => void = () => undefined;
  #cancelOpen: (error: unknown) => void = () => undefined;
  #ended: () => void = () => undefined;
  #cancelEnd: (error: unknown) => void = () => undefined;
  readonly #endSeen: Promise<void>;
  readonly #handle: Promise<FileHandle>;

  constructor(backlog: WriteBacklog) {
    this.#backlog = backlog;
    const opened = new Promise<FileHandle>((resolve, reject) => {
      this.#openHandle = resolve;
      this.#cancelOpen = reject;
    });
    opened.catch(() => undefined);
    this.#endSeen = new Promise<void>((resolve, reject) => {
      this.#ended = resolve;
      this.#cancelEnd = reject;
    });
    this.#endSeen.catch(() => undefined);
    this.#writes = opened.then(() => undefined);
    this.#writes.catch(() => undefined);
    this.#handle = opened;
  }

  /** The file to write into, once created. */
  attach(handle: FileHandle): void {
    this.#openHandle(handle);
  }

  write(buf: Buffer, start: number, end: number): void {
    if (this.#failed) return;
    this.#hash.update(buf.subarray(start, end));
    this.#received += end - start;
    let at = start;
    while (at < end) {
      this.#batch ??= batches.take(batchBytes);
      const take = Math.min(batchBytes - this.#fill, end - at);
      buf.copy(this.#batch, this.#fill, at, at + take);
      this.#fill += take;
      at += take;
      if (this.#fill === batchBytes) this.#submit();
    }
  }

  /** The content is complete: the last partial batch goes, and the hash is final. */
  end(): void {
    if (this.#failed) return;
    if (this.#fill > 0) this.#submit();
    else if (this.#batch) batches.recycle(this.#batch);
    this.#batch = undefined;
    this.#sha256 = this.#hash.digest('hex');
    this.#ended();
  }

  /** Stops the file: pending writes are dropped, and whoever waits on it is released with `error`. */
  fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    if (this.#batch) batches.recycle(this.#batch);
    this.#batch = undefined;
    this.#cancelOpen(error);
    this.#cancelEnd(error);
  }

  /** Settles when the content ended and every byte was written; returns the content's sha256. */
  async written(): Promise<{ bytes: number; received: number; sha256: string }> {
    await this.#endSeen;
    await this.#writes;
    return { bytes: this.#written, received: this.#received, sha256: this.#sha256 ?? '' };
  }

  #submit(): void {
    const batch = this.#batch as Buffer;
    const length = this.#fill;
    this.#batch = undefined;
    this.#fill = 0;
    this.#backlog.queued += length;
    const release = (written: number) => {
      batches.recycle(batch);
      this.#backlog.queued -= length;
      this.#backlog.shrank(written);
    };
    this.#writes = this.#writes.then(
      async () => {
        if (this.#failed) return release(0);
        let done = 0;
        try {
          const handle = await this.#handle;
          // One call writes the whole batch unless the disk is full (then it throws).
          while (done < length) done += (await handle.write(batch, done, length - done)).bytesWritten;
          this.#written += length;
        } finally {
          release(done);
        }
      },
      (error: unknown) => {
        release(0);
        throw error;
      },
    );
    // A failed write is reported through written().
    this.#writes.catch(() => undefined);
  }
}
