import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as connectTls } from 'node:tls';
import { signRequest } from './auth.js';
import type { TransferConfig } from './config.js';
import { VolumeTransferError } from './errors.js';
import { HttpResponseReader, type ResponseHead } from './http-response-reader.js';
import { headerNames } from './protocol.js';
import type { TlsDialOptions } from './tls.js';

/** Socket reads land in one buffer of this size per pull, reused for every read. */
const readBufferBytes = 1024 * 1024;

/** Where a response's body goes: bytes as they arrive, and a way to wait for room. */
export interface BodySink {
  /** Takes body bytes (copy what you keep); false: stop reading until `room()` settles. */
  push(buf: Buffer, start: number, end: number): boolean;
  room(): Promise<void>;
}

/** The answer to a snapshot request: status and headers now, the body when `receive` is called. */
export interface SnapshotAnswer extends ResponseHead {
  /** Feeds the body to `sink`; settles when it ended as framed, with the trailers. */
  receive(sink: BodySink): Promise<Record<string, string>>;
  /** Reads a small body whole (an error's JSON), at most `maxBytes`. */
  readAll(maxBytes: number): Promise<Buffer>;
  destroy(): void;
}

export interface SnapshotRequestOptions {
  signal?: AbortSignal | undefined;
  /** TLS options of an `https:` peer (tls.ts tlsDialOptions). */
  tls?: TlsDialOptions | undefined;
}

function connectionError(error: unknown, during: string): VolumeTransferError {
  if (error instanceof VolumeTransferError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new VolumeTransferError(`${during}: ${message}`, undefined, { cause: error });
}

/**
 * Sends a signed GET to a peer's volume server on a connection of its own, reading the
 * answer with HttpResponseReader from one reused buffer (`onread`): the body goes from the
 * socket's reads to the sink with no allocation per read. Resolves with the head; the
 * connection is closed by the body's end, `destroy()`, an error, the signal or the idle
 * timeout.
 */
export function requestSnapshot(
  config: Pick<TransferConfig, 'secret' | 'idleTimeoutMs'>,
  baseUrl: string,
  path: string,
  options: SnapshotRequestOptions = {},
): { answer: Promise<SnapshotAnswer>; nonce: string } {
  const url = new URL(path, baseUrl);
  const target = `${url.pathname}${url.search}`;
  const signed = signRequest(config.secret, 'GET', target);
  const buffer = Buffer.allocUnsafe(readBufferBytes);
  let sink: BodySink | undefined;
  let held: Buffer[] = [];
  let settleHead: { resolve: (head: ResponseHead) => void; reject: (error: unknown) => void } | undefined;
  const headRead = new Promise<ResponseHead>((resolve, reject) => {
    settleHead = { resolve, reject };
  });
  let settleBody: { resolve: (trailers: Record<string, string>) => void; reject: (error: unknown) => void } | undefined;
  let failure: unknown;
  let socket: Socket;
  const fail = (error: unknown) => {
    failure ??= error;
    socket.destroy();
    settleHead?.reject(failure);
    settleBody?.reject(failure);
  };
  let ended: Record<string, string> | undefined;
  /** A push said "no room": the read that is running ends by pausing the socket. */
  let wantsRoom = false;
  const reader = new HttpResponseReader({
    head: (head) => settleHead?.resolve(head),
    body: (buf, start, end) => {
      if (sink) {
        if (!sink.push(buf, start, end)) wantsRoom = true;
      } else {
        // Before `receive` is called (the head was just read): kept until then.
        held.push(Buffer.from(buf.subarray(start, end)));
      }
    },
    end: (trailers) => {
      ended = trailers;
      socket.end();
      settleBody?.resolve(trailers);
    },
  });
  const onread = {
    buffer,
    callback: (bytes: number, buf: Uint8Array): boolean => {
      try {
        reader.push(buf as Buffer, 0, bytes);
      } catch (error) {
        fail(error);
        return false;
      }
      if (!wantsRoom && sink) return true;
      if (!sink) return false;
      wantsRoom = false;
      void sink.room().then(() => socket.resume());
      return false;
    },
  };
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  socket = options.tls
    ? // tls.connect reads into a static buffer like net (nodejs/node#35753); @types/node omits `onread`.
      connectTls({
        ...options.tls,
        host,
        port,
        ...(isIP(host) ? {} : { servername: host }),
        onread,
      } as ConnectionOptions)
    : connectTcp({ host, port, onread });
  socket.setNoDelay(true);
  socket.setTimeout(config.idleTimeoutMs, () =>
    fail(new VolumeTransferError(`GET ${url.pathname}: no data for ${config.idleTimeoutMs} ms`)),
  );
  socket.on('error', (error) => fail(connectionError(error, 'volume transfer connection failed')));
  const onAbort = () =>
    fail(connectionError(options.signal?.reason ?? new Error('aborted'), 'volume transfer aborted'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  socket.on('close', () => {
    options.signal?.removeEventListener('abort', onAbort);
    if (ended !== undefined || failure !== undefined) return;
    try {
      reader.close();
    } catch (error) {
      fail(error);
      return;
    }
    if (!reader.complete) fail(new VolumeTransferError('the connection broke during the transfer: closed by the peer'));
  });
  if (options.signal?.aborted) onAbort();
  const headers = { host: url.host, ...signed, connection: 'close' };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`GET ${target} HTTP/1.1\r\n${lines.join('')}\r\n`);

  const answer = headRead.then((head): SnapshotAnswer => {
    const receive = (into: BodySink) =>
      new Promise<Record<string, string>>((resolve, reject) => {
        settleBody = { resolve, reject };
        if (failure !== undefined) return reject(failure);
        sink = into;
        const early = held;
        held = [];
        for (const chunk of early) into.push(chunk, 0, chunk.length);
        if (ended !== undefined) return resolve(ended);
        void into.room().then(() => socket.resume());
      });
    return {
      ...head,
      receive,
      readAll: async (maxBytes) => {
        const chunks: Buffer[] = [];
        let size = 0;
        await receive({
          push: (buf, start, end) => {
            size += end - start;
            if (size > maxBytes) throw new VolumeTransferError(`answer larger than ${maxBytes} bytes`, head.statusCode);
            chunks.push(Buffer.from(buf.subarray(start, end)));
            return true;
          },
          room: () => Promise.resolve(),
        });
        return Buffer.concat(chunks);
      },
      destroy: () => socket.destroy(),
    };
  });
  return { answer, nonce: signed[headerNames.nonce] };
}
