import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { crc32 } from 'node:zlib';
import { waitFor } from '@service-foundry/core';
import { type Pack, pack } from 'tar-stream';
import {
  headerNames,
  type StartedVolumeServer,
  signBody,
  signRequest,
  startVolumeServer,
  type TransferEvent,
  type TransferLimitsOptions,
} from '../src/index.js';

export function testSecret(): string {
  return randomBytes(24).toString('hex');
}

/**
 * A fingerprint of a directory tree written independently of the library: every entry's
 * path, type, permission bits, owner, size, mtime (ms), symlink target and content sha256.
 * Directory mtimes are left out unless asked (reading a tree must not count as a change).
 */
export async function fingerprint(dir: string, options: { dirMtimes?: boolean } = {}): Promise<string> {
  const lines: string[] = [];
  async function walk(rel: string): Promise<void> {
    const full = rel === '.' ? dir : join(dir, rel);
    const s = await lstat(full, { bigint: true });
    const mtimeMs = Number((s.mtimeNs + 500_000n) / 1_000_000n);
    const base = [rel, Number(s.mode) & 0o7777, Number(s.uid), Number(s.gid)];
    if (s.isDirectory()) {
      lines.push(JSON.stringify([...base, 'dir', options.dirMtimes ? mtimeMs : 0]));
      for (const name of (await readdir(full)).sort()) await walk(rel === '.' ? name : `${rel}/${name}`);
    } else if (s.isSymbolicLink()) {
      lines.push(JSON.stringify([rel, 'symlink', await readlink(full), Number(s.uid), Number(s.gid)]));
    } else if (s.isFile()) {
      const hash = createHash('sha256')
        .update(await readFile(full))
        .digest('hex');
      lines.push(JSON.stringify([...base, 'file', Number(s.size), mtimeMs, hash]));
    } else {
      lines.push(JSON.stringify([rel, 'other']));
    }
  }
  await walk('.');
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

/** Incompressible bytes. */
export function randomContent(bytes: number): Buffer {
  return randomBytes(bytes);
}

export async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const full = join(root, path);
    await mkdir(join(full, '..'), { recursive: true });
    await writeFile(full, content);
  }
}

/**
 * Waits until files written now are older than the sender's racy window (100 ms): a
 * sender trusts its stat cache only for files that had not changed for that long when
 * they were read, and tests that count bytes need those files trusted.
 */
export async function outlastRacyWindow(): Promise<void> {
  const until = Date.now() + 150;
  await waitFor(() => Date.now() >= until, { description: 'the racy window to pass', intervalMs: 20 });
}

export interface TestServer extends StartedVolumeServer {
  events: TransferEvent[];
}

export async function startTestServer(
  t: TestContext,
  secret: string,
  volumes: Record<string, string>,
  limits?: TransferLimitsOptions,
): Promise<TestServer> {
  const events: TransferEvent[] = [];
  const server = await startVolumeServer({
    secret,
    fsync: false,
    ...(limits ? { limits } : {}),
    resolveVolumeDir: (name) => volumes[name],
    onTransfer: (event) => events.push(event),
  });
  t.after(() => server.close());
  return Object.assign(server, { events });
}

export interface RawAnswer {
  status: number;
  body: string;
}

export interface RawRequestOptions {
  method: 'GET' | 'PUT';
  path: string;
  /** Sign with this secret; undefined sends an unsigned request. */
  secret?: string;
  /** Extra or overriding headers. */
  headers?: Record<string, string>;
  body?: Buffer;
}

/** One HTTP request, as a peer (or an attacker) would send it, without the library's client. */
export function rawRequest(baseUrl: string, options: RawRequestOptions): Promise<RawAnswer> {
  const url = new URL(options.path, baseUrl);
  const signed = options.secret ? signRequest(options.secret, options.method, `${url.pathname}${url.search}`) : {};
  const headers: Record<string, string> = { ...signed, ...(options.headers ?? {}) };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.body) req.write(options.body);
    req.end();
  });
}

/**
 * A peer that holds the cluster secret and answers every snapshot request with `tar`, its
 * checksum and signature trailers correct for the request's nonce (`control`: the sha256 of
 * the stream's control entries, as the receiver hashes them), so a pull can refuse it only
 * for what is inside the stream.
 */
export async function startHostilePeer(
  t: TestContext,
  secret: string,
  tar: Buffer,
  control: { header: string; trailer: string },
): Promise<string> {
  const crc = (crc32(tar) >>> 0).toString(16).padStart(8, '0');
  const server = createServer((req, res) => {
    // The puller hangs up as soon as it refuses: that is not this peer's failure.
    res.on('error', () => undefined);
    const nonce = String(req.headers[headerNames.nonce] ?? '');
    res.writeHead(200, {
      'content-type': 'application/x-tar',
      [headerNames.base]: 'none',
      trailer: `${headerNames.bodyChecksum}, ${headerNames.bodySignature}`,
    });
    res.write(tar);
    res.addTrailers({
      [headerNames.bodyChecksum]: crc,
      [headerNames.bodySignature]: signBody(secret, nonce, { crc32: crc, ...control }),
    });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Collects a tar-stream pack into one buffer. */
export async function packToBuffer(build: (p: Pack) => void | Promise<void>): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const ended = new Promise<void>((resolve, reject) => {
    archive.on('end', () => resolve());
    archive.on('error', reject);
  });
  await build(archive);
  archive.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export function sha256Hex(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Names in a directory, sorted. */
export async function listNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/**
 * A raw ustar header block, for entries tar-stream will not write (sizes it cannot back
 * with data, pax records it would not emit). `size` above 8 GiB uses GNU base-256.
 */
export function ustarHeader(name: string, size: number, typeflag = '0'): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  if (size < 8 * 1024 ** 3) {
    block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  } else {
    block[124] = 0x80;
    let rest = BigInt(size);
    for (let i = 135; i > 124; i--) {
      block[i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }
  block.write('00000000000\0', 136, 'latin1');
  block.write(typeflag, 156, 'latin1');
  block.write('ustar\0', 257, 'latin1');
  block.write('00', 263, 'latin1');
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** A pax extended header block with its body, padded. */
export function paxRecords(records: Record<string, string>): Buffer {
  let body = '';
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    let length = rest.length + 2;
    while (`${length}${rest}`.length !== length) length++;
    body += `${length}${rest}`;
  }
  const data = Buffer.from(body);
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return Buffer.concat([ustarHeader('PaxHeader', data.length, 'x'), padded]);
}
