import { InvalidInputError } from '@service-foundry/core';

const block = 512;

export type TarEntryType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'contiguous-file';

/** One entry's header, with pax and GNU long-name records applied (tar-stream's field names). */
export interface TarHeader {
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname: string | null;
  /** The entry's pax records, or null when it had none. */
  pax: Record<string, string> | null;
}

/** What a {@link TarReader} reports, synchronously, in stream order. */
export interface TarEvents {
  entry(header: TarHeader): void;
  /** Content bytes `buf[start, end)` of the current entry; the buffer is reused once this returns. */
  data(buf: Buffer, start: number, end: number): void;
  /** The current entry's content is complete (also for entries without content). */
  entryEnd(): void;
}

const typeByFlag: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
};

function malformed(problem: string): never {
  throw new InvalidInputError('snapshot stream refused', [`malformed tar stream: ${problem}`]);
}

function text(header: Buffer, offset: number, length: number): string {
  const end = header.indexOf(0, offset);
  return header.toString('utf8', offset, end === -1 || end > offset + length ? offset + length : end);
}

/** A numeric field: octal text (spaces and NULs around it), or GNU base-256 when the top bit is set. */
function numeric(header: Buffer, offset: number, length: number): number {
  const first = header[offset] ?? 0;
  if (first & 0x80) {
    if (first !== 0x80) malformed('negative base-256 number in a header');
    let value = 0;
    for (let i = offset + 1; i < offset + length; i++) value = value * 256 + (header[i] ?? 0);
    return value;
  }
  const field = header
    .toString('latin1', offset, offset + length)
    .replace(/[\0 ]+$/, '')
    .replace(/^[ \0]+/, '');
  if (field === '') return 0;
  if (!/^[0-7]+$/.test(field)) malformed('a numeric header field is not octal');
  return Number.parseInt(field, 8);
}

function checksumOf(header: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += header[i] ?? 0;
  for (let i = 156; i < block; i++) sum += header[i] ?? 0;
  return sum;
}

/** pax records: `<length> <key>=<value>\n`, length in decimal bytes including itself. */
function parsePax(bytes: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < bytes.length) {
    const space = bytes.indexOf(32, offset);
    const length = space === -1 ? Number.NaN : Number(bytes.toString('latin1', offset, space));
    if (!Number.isSafeInteger(length) || length <= space - offset + 1 || offset + length > bytes.length) {
      malformed('a pax record has no valid length');
    }
    if (bytes[offset + length - 1] !== 10) malformed('a pax record does not end with a newline');
    const record = bytes.toString('utf8', space + 1, offset + length - 1);
    const equals = record.indexOf('=');
    if (equals <= 0) malformed('a pax record has no key');
    records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

/**
 * A push parser of a tar stream (ustar and GNU headers, pax and GNU long-name records),
 * for the receiving end of a transfer: it reads the bytes where they are, in whatever
 * pieces they come, and reports entries and content slices synchronously, so the caller
 * copies what it keeps and the read buffer is reused. Framing limits (declared sizes,
 * record sizes, entry types, what follows the end) are TarFrameGuard's, which sees the
 * bytes first; this checks each header's checksum and format.
 */
export class TarReader {
  readonly #events: TarEvents;
  readonly #header = Buffer.alloc(block);
  #headerFill = 0;
  /** Content bytes of the current entry still to come, then its padding. */
  #dataLeft = 0;
  #padLeft = 0;
  /** A pax or long-name record being collected, and what it is. */
  #record: { kind: 'x' | 'L' | 'K'; chunks: Buffer[] } | undefined;
  #pax: Record<string, string> | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #inEntry = false;
  #ended = false;

  constructor(events: TarEvents) {
    this.#events = events;
  }

  /** Whether the end-of-archive block was read. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether the stream stopped inside an entry, a record or a header. */
  get midEntry(): boolean {
    return this.#inEntry || this.#record !== undefined || this.#headerFill > 0 || this.#padLeft > 0;
  }

  push(buf: Buffer, start = 0, end = buf.length): void {
    let at = start;
    while (at < end && !this.#ended) {
      if (this.#dataLeft > 0) {
        const take = Math.min(this.#dataLeft, end - at);
        if (this.#record) this.#record.chunks.push(Buffer.from(buf.subarray(at, at + take)));
        else this.#events.data(buf, at, at + take);
        this.#dataLeft -= take;
        at += take;
        if (this.#dataLeft === 0) this.#contentDone();
        continue;
      }
      if (this.#padLeft > 0) {
        const take = Math.min(this.#padLeft, end - at);
        this.#padLeft -= take;
        at += take;
        continue;
      }
      const take = Math.min(block - this.#headerFill, end - at);
      buf.copy(this.#header, this.#headerFill, at, at + take);
      this.#headerFill += take;
      at += take;
      if (this.#headerFill === block) {
        this.#headerFill = 0;
        this.#onHeader();
      }
    }
  }

  #onHeader(): void {
    const header = this.#header;
    if (header.every((byte) => byte === 0)) {
      if (this.#record || this.#pax || this.#longName !== undefined || this.#longLink !== undefined)
        malformed('the archive ends after a metadata record');
      this.#ended = true;
      return;
    }
    if (checksumOf(header) !== numeric(header, 148, 8)) malformed('a header checksum does not match');
    const magic = header.toString('latin1', 257, 265);
    const ustar = magic.startsWith('ustar\0');
    if (!ustar && magic !== 'ustar  \0') malformed('a header is neither ustar nor GNU');
    const flag = String.fromCharCode(header[156] ?? 0);
    const size = numeric(header, 124, 12);
    if (flag === 'x' || flag === 'L' || flag === 'K') {
      this.#record = { kind: flag, chunks: [] };
      this.#startContent(size);
      return;
    }
    let type = typeByFlag[flag];
    if (!type) malformed(`unsupported entry type ${JSON.stringify(flag)}`);
    let name = text(header, 0, 100);
    if (ustar && header[345] !== 0) name = `${text(header, 345, 155)}/${name}`;
    if (type === 'file' && name.endsWith('/')) type = 'directory';
    const pax = this.#pax;
    const entry: TarHeader = {
      name: pax?.path ?? this.#longName ?? name,
      type,
      size,
      mode: numeric(header, 100, 8),
      uid: numeric(header, 108, 8),
      gid: numeric(header, 116, 8),
      mtime: new Date(numeric(header, 136, 12) * 1000),
      linkname: pax?.linkpath ?? this.#longLink ?? (header[157] === 0 ? null : text(header, 157, 100)),
      pax: pax ?? null,
    };
    this.#pax = undefined;
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#inEntry = true;
    this.#events.entry(entry);
    this.#startContent(size);
  }

  #startContent(size: number): void {
    this.#dataLeft = size;
    this.#padLeft = (block - (size % block)) % block;
    if (size === 0) this.#contentDone();
  }

  #contentDone(): void {
    const record = this.#record;
    if (record) {
      this.#record = undefined;
      const bytes = Buffer.concat(record.chunks);
      if (record.kind === 'x') this.#pax = { ...this.#pax, ...parsePax(bytes) };
      else if (record.kind === 'L') this.#longName = text(bytes, 0, bytes.length);
      else this.#longLink = text(bytes, 0, bytes.length);
      return;
    }
    this.#inEntry = false;
    this.#events.entryEnd();
  }
}
