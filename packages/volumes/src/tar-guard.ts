import { InvalidInputError } from '@service-foundry/core';
import type { TransferLimits } from './config.js';

const block = 512;
/** Pax and GNU long-name bodies are buffered whole by tar-stream: keep them small. */
const maxMetaBytes = 64 * 1024;
/** Typeflags tar-stream turns into entries; the entry handler decides which it accepts. */
const entryTypes = new Set(['0', '\0', '1', '2', '3', '4', '5', '6', '7']);
/** Metadata records: pax extended header, GNU long name, GNU long link name. */
const metaTypes = new Set(['x', 'L', 'K']);

function refuse(problem: string): never {
  throw new InvalidInputError('snapshot stream refused', [problem]);
}

/** A ustar size field: octal text, or GNU base-256 when the top bit is set. */
function readSize(header: Buffer): number {
  const field = header.subarray(124, 136);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    return value + (first & 0x7f) * 256 ** (field.length - 1);
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) refuse('malformed size field in a tar header');
  return Number.parseInt(text, 8);
}

/**
 * Watches the raw tar bytes before tar-stream sees them and refuses what tar-stream would
 * otherwise act on blindly: a declared size beyond the limits (it would wait for, or
 * buffer, that much), pax or long-name records larger than 64 KiB (buffered in memory),
 * pax `size` overrides and global headers (they change the framing), unknown entry types,
 * bodies on entries that have none, more entries than allowed, and anything after the
 * end-of-archive blocks.
 */
export class TarFrameGuard {
  readonly #limits: TransferLimits;
  #header = Buffer.alloc(0);
  /** Bytes of data (with padding) still to pass before the next header. */
  #skip = 0;
  #meta: Buffer[] | undefined;
  #metaLeft = 0;
  #ended = false;
  #entries = 0;
  #dataBytes = 0;

  constructor(limits: TransferLimits) {
    this.#limits = limits;
  }

  /** Inspects the next chunk of the stream; throws InvalidInputError on the first violation. */
  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#ended) {
        const rest = chunk.subarray(offset);
        if (rest.some((byte) => byte !== 0)) refuse('data after the end of the archive');
        return;
      }
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, chunk.length - offset);
        if (this.#meta) this.#collectMeta(chunk.subarray(offset, offset + take));
        this.#skip -= take;
        offset += take;
        if (this.#skip === 0 && this.#meta) this.#checkPax();
        continue;
      }
      const take = Math.min(block - this.#header.length, chunk.length - offset);
      this.#header = Buffer.concat([this.#header, chunk.subarray(offset, offset + take)]);
      offset += take;
      if (this.#header.length === block) {
        const header = this.#header;
        this.#header = Buffer.alloc(0);
        this.#onHeader(header);
      }
    }
  }

  #onHeader(header: Buffer): void {
    if (header.every((byte) => byte === 0)) {
      this.#ended = true;
      return;
    }
    const typeflag = String.fromCharCode(header[156] ?? 0);
    const size = readSize(header);
    if (metaTypes.has(typeflag)) {
      if (size > maxMetaBytes) refuse(`tar metadata record of ${size} bytes (limit ${maxMetaBytes})`);
      this.#meta = typeflag === 'x' ? [] : undefined;
      this.#metaLeft = size;
    } else if (typeflag === 'g') {
      refuse('pax global headers are not accepted');
    } else if (!entryTypes.has(typeflag)) {
      refuse(`unsupported tar entry type ${JSON.stringify(typeflag)}`);
    } else {
      this.#entries++;
      // The two control entries come on top of the volume's own.
      if (this.#entries > this.#limits.maxEntries + 2) refuse(`more than ${this.#limits.maxEntries} entries`);
      const isFile = typeflag === '0' || typeflag === '\0' || typeflag === '7';
      if (!isFile && size !== 0) refuse('a tar entry without content declares a size');
      this.#dataBytes += size;
      if (size > this.#limits.maxTotalBytes + this.#limits.maxControlBytes * 2 || this.#dataBytes > this.#budget()) {
        refuse(`entry declares ${size} bytes: more than the stream may carry (limit ${this.#limits.maxTotalBytes})`);
      }
    }
    this.#skip = Math.ceil(size / block) * block;
    if (this.#skip === 0 && this.#meta) this.#checkPax();
  }

  #budget(): number {
    return this.#limits.maxTotalBytes + this.#limits.maxControlBytes * 2;
  }

  #collectMeta(bytes: Buffer): void {
    if (!this.#meta || this.#metaLeft <= 0) return;
    const part = bytes.subarray(0, Math.min(bytes.length, this.#metaLeft));
    this.#meta.push(part);
    this.#metaLeft -= part.length;
  }

  #checkPax(): void {
    const text = Buffer.concat(this.#meta ?? []).toString('utf8');
    this.#meta = undefined;
    for (const line of text.split('\n')) {
      const key = line.slice(line.indexOf(' ') + 1, line.indexOf('='));
      if (key === 'size' || key.startsWith('GNU.sparse')) refuse(`pax record ${JSON.stringify(key)} is not accepted`);
    }
  }

  /** Whether the end-of-archive marker was seen (a complete stream has it). */
  get ended(): boolean {
    return this.#ended;
  }
}
