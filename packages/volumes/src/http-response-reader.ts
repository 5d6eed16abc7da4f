import { VolumeTransferError } from './errors.js';

/** The status line and header section of a response are refused beyond this size. */
const maxHeadBytes = 64 * 1024;
/** A chunk-size line (hex size and extensions) is refused beyond this size. */
const maxChunkLineBytes = 1024;

export interface ResponseHead {
  statusCode: number;
  /** Lower-case names; repeated fields joined with `, `. */
  headers: Record<string, string>;
}

/** What an {@link HttpResponseReader} reports, synchronously, in order. */
export interface ResponseEvents {
  head(head: ResponseHead): void;
  /** Body bytes `buf[start, end)`; the buffer is reused once this returns. */
  body(buf: Buffer, start: number, end: number): void;
  /** The body is complete; `trailers` as the header fields (empty without chunked framing). */
  end(trailers: Record<string, string>): void;
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'until-close' | 'done';

function malformed(problem: string): never {
  throw new VolumeTransferError(`malformed HTTP answer from the peer: ${problem}`);
}

function parseFields(lines: string[], into: Record<string, string>): void {
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) malformed('a header line has no name');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    into[name] = into[name] === undefined ? value : `${into[name]}, ${value}`;
  }
}

/**
 * A push parser of one HTTP/1.1 response to a GET: status line and headers, then a body
 * framed by `Transfer-Encoding: chunked` (with trailers), `Content-Length`, or the end of
 * the connection. It reports body bytes where they lie in the caller's buffer, so a
 * socket read straight into a reused buffer (`onread`) gets to the receiver without an
 * allocation per read, which is what Node's HTTP client costs at a GiB.
 */
export class HttpResponseReader {
  readonly #events: ResponseEvents;
  #state: State = 'head';
  /** Bytes of a line-oriented part (head, chunk size line, trailers) read so far. */
  #text = '';
  #left = 0;

  constructor(events: ResponseEvents) {
    this.#events = events;
  }

  /** Whether the body ended as its framing says. */
  get complete(): boolean {
    return this.#state === 'done';
  }

  /** The connection closed: ends a body framed by the connection's end, fails any other. */
  close(): void {
    if (this.#state === 'until-close') {
      this.#state = 'done';
      this.#events.end({});
    }
  }

  push(buf: Buffer, start = 0, end = buf.length): void {
    let at = start;
    while (at < end) {
      switch (this.#state) {
        case 'head':
        case 'trailers':
          at = this.#readSection(buf, at, end);
          break;
        case 'chunk-size':
        case 'chunk-end':
          at = this.#readLine(buf, at, end);
          break;
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.#left, end - at);
          this.#events.body(buf, at, at + take);
          this.#left -= take;
          at += take;
          if (this.#left === 0) this.#afterData();
          break;
        }
        case 'until-close':
          this.#events.body(buf, at, end);
          at = end;
          break;
        case 'done':
          malformed('bytes after the end of the answer');
      }
    }
  }

  /** Head or trailers: up to an empty line. */
  #readSection(buf: Buffer, at: number, end: number): number {
    const before = this.#text.length;
    this.#text += buf.toString('latin1', at, Math.min(end, at + maxHeadBytes + 4));
    const blank = this.#text.indexOf('\r\n\r\n');
    // A trailer section may be empty: the chunk's CRLF then the blank line's.
    const emptyTrailers = this.#state === 'trailers' && this.#text.startsWith('\r\n');
    if (blank === -1 && !emptyTrailers) {
      if (this.#text.length > maxHeadBytes) malformed(`header section over ${maxHeadBytes} bytes`);
      return end;
    }
    const sectionEnd = emptyTrailers ? 0 : blank;
    const consumed = sectionEnd + (emptyTrailers ? 2 : 4) - before;
    const lines = this.#text.slice(0, sectionEnd).split('\r\n');
    this.#text = '';
    if (this.#state === 'head') this.#onHead(lines);
    else {
      const trailers: Record<string, string> = {};
      parseFields(
        lines.filter((line) => line !== ''),
        trailers,
      );
      this.#state = 'done';
      this.#events.end(trailers);
    }
    return at + consumed;
  }

  #onHead(lines: string[]): void {
    const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!status) malformed('no HTTP/1.x status line');
    const statusCode = Number(status[1]);
    const headers: Record<string, string> = {};
    parseFields(lines.slice(1), headers);
    // An interim answer (100 Continue) is followed by the real one.
    if (statusCode >= 100 && statusCode < 200) return;
    const encoding = headers['transfer-encoding']?.toLowerCase();
    const length = headers['content-length'];
    if (encoding !== undefined) {
      if (encoding !== 'chunked') malformed(`transfer encoding ${JSON.stringify(encoding)}`);
      this.#state = 'chunk-size';
    } else if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) malformed('content-length is not a number');
      this.#left = Number(length);
      this.#state = 'length';
    } else {
      this.#state = 'until-close';
    }
    this.#events.head({ statusCode, headers });
    if (this.#state === 'length' && this.#left === 0) this.#afterData();
  }

  /** A chunk-size line, or the CRLF after a chunk's data. */
  #readLine(buf: Buffer, at: number, end: number): number {
    const newline = buf.indexOf(10, at);
    const lineEnd = newline === -1 || newline >= end ? end : newline + 1;
    this.#text += buf.toString('latin1', at, lineEnd);
    if (this.#text.length > maxChunkLineBytes) malformed('chunk size line too long');
    if (!this.#text.endsWith('\r\n')) return lineEnd;
    const line = this.#text.slice(0, -2);
    this.#text = '';
    if (this.#state === 'chunk-end') {
      if (line !== '') malformed('chunk data longer than its size');
      this.#state = 'chunk-size';
      return lineEnd;
    }
    const size = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(line);
    if (!size) malformed('bad chunk size');
    this.#left = Number.parseInt(size[1] as string, 16);
    this.#state = this.#left === 0 ? 'trailers' : 'chunk-data';
    return lineEnd;
  }

  #afterData(): void {
    if (this.#state === 'chunk-data') {
      this.#state = 'chunk-end';
      return;
    }
    this.#state = 'done';
    this.#events.end({});
  }
}
