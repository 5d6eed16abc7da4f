/**
 * Reusable read buffers for the sender. Reading a volume allocates one buffer per MiB;
 * handing them back once the socket has taken their bytes keeps the garbage collector
 * out of a 1 GiB transfer. Only buffers that came from the pool go back into it.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #owned = new WeakSet<Buffer>();
  readonly #size: number;
  readonly #keep: number;

  constructor(size: number, keep: number) {
    this.#size = size;
    this.#keep = keep;
  }

  /** A buffer of `length` bytes (content undefined); pooled when it is the pool's size. */
  take(length: number): Buffer {
    if (length !== this.#size) return Buffer.allocUnsafe(length);
    const buffer = this.#free.pop() ?? Buffer.allocUnsafe(this.#size);
    this.#owned.add(buffer);
    return buffer;
  }

  /** Gives a buffer back once nothing reads it any more; others are ignored. */
  recycle(buffer: Buffer): void {
    if (!this.#owned.has(buffer)) return;
    this.#owned.delete(buffer);
    if (this.#free.length < this.#keep) this.#free.push(buffer);
  }
}
