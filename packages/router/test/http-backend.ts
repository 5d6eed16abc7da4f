import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export interface HttpBackend {
  name: string;
  port: number;
  /** Upgraded (WebSocket) sockets currently open on the backend side. */
  upgrades: Set<Duplex>;
  /** Requests to `/hold` not answered yet. */
  held: Set<ServerResponse>;
  /** Requests that reached the backend since it started. */
  requests(): number;
  /** Answers every held request. */
  releaseHeld(): void;
  close(): Promise<void>;
}

const websocketGuid = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** An unmasked WebSocket text frame (server → client), payloads under 126 bytes. */
export function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new RangeError('frame too long for this helper');
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

export function websocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + websocketGuid)
    .digest('base64');
}

/**
 * A stand-in HTTP service: answers `<name> <method> <url> host=<host>` and accepts
 * WebSocket upgrades by hand (RFC 6455 handshake), greeting with a text frame and then
 * echoing raw bytes. A request to `/hold` gets its headers at once and its end only on
 * `releaseHeld()`: a request in flight for as long as a test needs.
 */
export async function startHttpBackend(name: string): Promise<HttpBackend> {
  const upgrades = new Set<Duplex>();
  const held = new Set<ServerResponse>();
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests += 1;
    if (req.url === '/hold') {
      held.add(res);
      res.once('close', () => held.delete(res));
      res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
      res.write('held ');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
    res.end(`${name} ${req.method} ${req.url} host=${req.headers.host} xff=${req.headers['x-forwarded-for'] ?? ''}`);
  });
  server.on('upgrade', (req, socket: Duplex) => {
    const key = req.headers['sec-websocket-key'];
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      return;
    }
    upgrades.add(socket);
    socket.on('close', () => upgrades.delete(socket));
    socket.on('error', () => {});
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`,
    );
    socket.write(textFrame(`hello from ${name}`));
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('backend has no port');
  return {
    name,
    port: address.port,
    upgrades,
    held,
    requests: () => requests,
    releaseHeld: () => {
      for (const res of held) res.end(`${name} released`);
    },
    close: async () => {
      for (const socket of upgrades) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
