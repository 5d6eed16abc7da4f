import assert from 'node:assert/strict';
import { get, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { waitFor } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { extract } from 'tar-stream';
import { pullSnapshot, signRequest } from '../src/index.js';
import { headerNames } from '../src/protocol.js';
import {
  fingerprint,
  randomContent,
  sha256Hex,
  startHostilePeer,
  startTestServer,
  testSecret,
  writeFiles,
} from './helpers.js';

interface Answer {
  status: number;
  body: Buffer;
  trailers: IncomingHttpHeaders;
}

function signedGetOnce(url: string, secret: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    get(new URL(path, url), { headers: { ...signRequest(secret, 'GET', path) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), trailers: res.trailers }),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** The server answers 409 while it still records the previous transfer (one per volume). */
function signedGet(url: string, secret: string, path: string): Promise<Answer> {
  return waitFor(
    async () => {
      const answer = await signedGetOnce(url, secret, path);
      return answer.status === 409 ? undefined : answer;
    },
    { description: `GET ${path} (not busy)`, timeoutMs: 10_000, intervalMs: 20 },
  );
}

/** sha256 of the stream's two control entries, as a receiver hashes them for the signature. */
async function controlHashes(tar: Buffer): Promise<{ header: string; trailer: string }> {
  const hashes = { header: '', trailer: '' };
  const reader = extract();
  reader.end(tar);
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const kind = (entry.header.pax as Record<string, string> | undefined)?.['SF.control'];
    if (kind === 'header' || kind === 'trailer') hashes[kind] = sha256Hex(Buffer.concat(chunks));
  }
  return hashes;
}

/** A volume `vol` of two files, served by a volume server of its own. */
async function servedVolume(t: TestContext) {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await writeFiles(source, { 'a.bin': randomContent(200_000), 'd/b.txt': 'hello' });
  const secret = testSecret();
  const server = await startTestServer(t, secret, { vol: source });
  return { root, source, secret, server };
}

test('check=manifest: no CRC of the body; a receiver that asks nothing still gets one; another value is refused', async (t) => {
  const { secret, server } = await servedVolume(t);

  const current = await signedGet(server.url, secret, '/volumes/vol/snapshot?since=none&check=manifest');
  assert.equal(current.status, 200);
  assert.equal(current.trailers[headerNames.bodyChecksum], 'none');
  assert.match(String(current.trailers[headerNames.bodySignature]), /^[0-9a-f]{64}$/);

  const older = await signedGet(server.url, secret, '/volumes/vol/snapshot?since=none');
  assert.equal(older.status, 200);
  const crc = (crc32(older.body) >>> 0).toString(16).padStart(8, '0');
  assert.equal(older.trailers[headerNames.bodyChecksum], crc, 'a receiver before check=manifest verifies this CRC');

  const bad = await signedGet(server.url, secret, '/volumes/vol/snapshot?since=none&check=crc32');
  assert.equal(bad.status, 400);
  assert.match(bad.body.toString(), /check must be manifest/);
});

test('a sender before check=manifest (a CRC in its signed trailer) is still pulled from', async (t) => {
  const { root, source, secret, server } = await servedVolume(t);
  // What an older sender answers: the same stream, its CRC trailer signed (startHostilePeer).
  const { body } = await signedGet(server.url, secret, '/volumes/vol/snapshot?since=none');
  const older = await startHostilePeer(t, secret, body, await controlHashes(body));
  const target = join(root, 'target');
  const result = await pullSnapshot({ url: older, secret, name: 'vol', into: target, fsync: false });
  assert.equal(result.files, 2);
  assert.equal(await fingerprint(target), await fingerprint(source));
});
