import assert from 'node:assert/strict';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCodes, isSfError } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import type { Pack } from 'tar-stream';
import {
  controlEntryHeader,
  pullSnapshot,
  signRequest,
  snapshotFormat,
  VolumeTransferError,
  volumeEntryHeader,
} from '../src/index.js';
import {
  fingerprint,
  listNames,
  packToBuffer,
  paxRecords,
  randomContent,
  sha256Hex,
  startHostilePeer,
  startTestServer,
  testSecret,
  ustarHeader,
  writeFiles,
} from './helpers.js';

const limits = { maxEntries: 50, maxTotalBytes: 8 * 1024 * 1024 };

function headerDocument(volume = 'vol'): Buffer {
  return Buffer.from(
    JSON.stringify({ format: snapshotFormat, volume, base: null, planned: { entries: 1, files: 1, bytes: 1 } }),
  );
}

/** A stream that starts like a real one (a valid header entry), then carries `entries`. */
async function streamWith(entries: (p: Pack) => void, volume = 'vol'): Promise<{ tar: Buffer; header: string }> {
  const doc = headerDocument(volume);
  const tar = await packToBuffer((p) => {
    p.entry(controlEntryHeader('header', doc.length), doc);
    entries(p);
  });
  return { tar, header: sha256Hex(doc) };
}

const meta = { mode: 0o644, uid: 0, gid: 0, mtimeMs: 1_700_000_000_000 };

function file(p: Pack, path: string, content: Buffer | string, mode = 0o644): void {
  const bytes = Buffer.from(content);
  p.entry(volumeEntryHeader({ path, type: 'file', size: bytes.length, ...meta, mode }), bytes);
}

/** Raw blocks after a valid header entry: for what tar-stream cannot be made to write. */
async function rawStream(...blocks: Buffer[]): Promise<{ tar: Buffer; header: string }> {
  const { tar, header } = await streamWith(() => undefined);
  // Drop tar-stream's end-of-archive blocks, append ours, end the archive again.
  const body = tar.subarray(0, tar.length - 1024);
  return { tar: Buffer.concat([body, ...blocks, Buffer.alloc(1024)]), header };
}

/** How a pull from a hostile peer ends: the error's stable code and message. */
async function refusal(pull: Promise<unknown>): Promise<{ code: string; message: string }> {
  return pull.then(
    () => ({ code: 'accepted', message: 'the pull succeeded' }),
    (error: unknown) => ({ code: isSfError(error) ? error.code : 'no code', message: (error as Error).message }),
  );
}

test('malicious streams are refused: nothing is written outside the target and the old copy stays', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const target = join(root, 'vol');
  const outside = join(root, 'outside');
  await writeFiles(outside, { sentinel: 'sentinel content' });
  await writeFiles(target, { 'old/data': randomContent(50_000), 'old/more': 'previous copy' });
  const secret = testSecret();
  const targetBefore = await fingerprint(target, { dirMtimes: true });
  const outsideBefore = await fingerprint(outside, { dirMtimes: true });

  async function assertRefused(what: string, stream: { tar: Buffer; header: string }, reason: RegExp) {
    const peer = await startHostilePeer(t, secret, stream.tar, { header: stream.header, trailer: '' });
    const answer = await refusal(
      pullSnapshot({ url: peer, secret, name: 'vol', into: target, since: 'none', limits, fsync: false }),
    );
    assert.equal(answer.code, ErrorCodes.invalidInput, `${what}: ${answer.code} ${answer.message}`);
    assert.match(answer.message, reason, what);
    assert.equal(await fingerprint(target, { dirMtimes: true }), targetBefore, `${what}: the old copy is intact`);
    assert.equal(await fingerprint(outside, { dirMtimes: true }), outsideBefore, `${what}: nothing changed outside`);
    assert.equal(await readFile(join(outside, 'sentinel'), 'utf8'), 'sentinel content');
    assert.deepEqual(await listNames(root), ['outside', 'vol', 'vol.sf-transfer'], `${what}: nothing new beside it`);
    assert.deepEqual(await listNames(join(root, 'vol.sf-transfer')), [], `${what}: staging removed`);
  }

  await assertRefused('traversal', await streamWith((p) => file(p, '../outside/evil', 'x')), /'\.\.' component/);
  await assertRefused(
    'traversal after normalisation',
    await streamWith((p) => file(p, 'old/../../outside/evil', 'x')),
    /'\.\.' component/,
  );
  await assertRefused(
    'absolute path',
    await streamWith((p) => file(p, join(outside, 'abs-evil'), 'x')),
    /absolute path/,
  );
  await assertRefused(
    'symlink leaving the volume, then a file through it',
    await streamWith((p) => {
      p.entry(volumeEntryHeader({ path: 'esc', type: 'symlink', size: 0, ...meta, target: '../outside' }));
      file(p, 'esc/evil', 'x');
    }),
    /symlink target leaves the volume/,
  );
  await assertRefused(
    'absolute symlink',
    await streamWith((p) => {
      p.entry(volumeEntryHeader({ path: 'esc', type: 'symlink', size: 0, ...meta, target: outside }));
    }),
    /symlink target is absolute/,
  );
  await assertRefused(
    'file written through a symlink inside the volume',
    await streamWith((p) => {
      p.entry(volumeEntryHeader({ path: 'inner', type: 'symlink', size: 0, ...meta, target: '.' }));
      file(p, 'inner/evil', 'x');
    }),
    /parent "inner" is a symlink/,
  );
  await assertRefused(
    'hardlink leaving the volume',
    await streamWith((p) => p.entry({ name: 'hl', type: 'link', linkname: '../outside/sentinel' })),
    /'\.\.' component/,
  );
  await assertRefused(
    'hardlink to an absolute path',
    await streamWith((p) => p.entry({ name: 'hl', type: 'link', linkname: join(outside, 'sentinel') })),
    /absolute path/,
  );
  await assertRefused(
    'hardlink to a file the copy does not have',
    await streamWith((p) => p.entry({ name: 'hl', type: 'link', linkname: 'old/data' })),
    /not a file of the copy/,
  );
  await assertRefused(
    'character device',
    await streamWith((p) => p.entry({ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 })),
    /character-device entries are not accepted/,
  );
  await assertRefused(
    'block device',
    await streamWith((p) => p.entry({ name: 'disk', type: 'block-device', devmajor: 8, devminor: 0 })),
    /block-device entries are not accepted/,
  );
  await assertRefused(
    'FIFO',
    await streamWith((p) => p.entry({ name: 'pipe', type: 'fifo' })),
    /fifo entries are not accepted/,
  );
  await assertRefused(
    'huge declared size (octal)',
    await rawStream(ustarHeader('huge', 8 * 1024 ** 3 - 1), randomContent(4096)),
    /more than the stream may carry/,
  );
  await assertRefused(
    'huge declared size (base-256)',
    await rawStream(ustarHeader('huge', 1024 ** 4), randomContent(4096)),
    /more than the stream may carry/,
  );
  await assertRefused(
    'pax record changing an entry size',
    await rawStream(paxRecords({ size: '999999999' }), ustarHeader('small', 0)),
    /pax record "size"/,
  );
  await assertRefused(
    'huge pax record',
    await rawStream(ustarHeader('PaxHeader', 512 * 1024 * 1024, 'x')),
    /metadata record of 536870912 bytes/,
  );
  await assertRefused(
    'too many entries',
    await streamWith((p) => {
      for (let i = 0; i < 60; i++) file(p, `many/f${i}`, 'x');
    }),
    /more than 50 entries/,
  );
  await assertRefused(
    'too many bytes',
    await streamWith((p) => {
      for (let i = 0; i < 9; i++) file(p, `f${i}`, randomContent(1024 * 1024));
    }),
    /more than 8388608 bytes/,
  );
  await assertRefused(
    'duplicate entry',
    await streamWith((p) => {
      file(p, 'twice', 'one');
      file(p, 'twice', 'two');
    }),
    /duplicate entry/,
  );
  await assertRefused('setuid file', await streamWith((p) => file(p, 'suid', 'x', 0o4755)), /setuid or setgid file/);
  await assertRefused(
    'no header entry',
    { tar: await packToBuffer((p) => file(p, 'plain', 'x')), header: '' },
    /does not start with its header/,
  );
  await assertRefused('stream for another volume', await streamWith(() => undefined, 'other'), /not "vol"/);
  await assertRefused(
    'stream cut short (no trailer)',
    await streamWith((p) => file(p, 'partial', 'x')),
    /ended before its trailer/,
  );
  const truncated = await streamWith((p) => file(p, 'cut', randomContent(100_000)));
  await assertRefused(
    'stream cut inside an entry',
    { tar: truncated.tar.subarray(0, truncated.tar.length - 60_000), header: truncated.header },
    /malformed tar stream|Unexpected end/,
  );

  // The receiving side still works after all that.
  const source = join(root, 'good-source');
  await writeFiles(source, { 'fine.txt': 'fine' });
  const server = await startTestServer(t, secret, { vol: source });
  const ok = await pullSnapshot({ url: server.url, secret, name: 'vol', into: target, limits, fsync: false });
  assert.equal(ok.files, 1);
  assert.equal(await readFile(join(target, 'fine.txt'), 'utf8'), 'fine');
});

test('a sender whose symlinks chain out of the volume is refused once the manifest shows the chain', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await mkdir(join(source, 'a'), { recursive: true });
  // Each link alone stays inside; followed together, `x` is the volume's parent.
  await symlink('..', join(source, 'a/up'));
  await symlink('a/up/..', join(source, 'x'));
  const target = join(root, 'vol');
  await writeFiles(target, { keep: 'previous copy' });
  const before = await fingerprint(target);
  const secret = testSecret();
  const server = await startTestServer(t, secret, { vol: source });
  const answer = await refusal(pullSnapshot({ url: server.url, secret, name: 'vol', into: target, fsync: false }));
  assert.equal(answer.code, ErrorCodes.invalidInput, answer.message);
  assert.match(answer.message, /resolves outside the volume/);
  assert.equal(await fingerprint(target), before);
});

test('content or metadata that differ from the signed manifest are refused', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await writeFiles(source, { 'data.bin': Buffer.concat([randomContent(10_000), Buffer.from('MARKER-1234')]) });
  const secret = testSecret();
  const target = join(root, 'target');
  await writeFiles(target, { keep: 'previous copy' });
  const before = await fingerprint(target);
  const origin = await startTestServer(t, secret, { vol: source });

  // A genuine snapshot, captured as an attacker on the wire would see it.
  const path = '/volumes/vol/snapshot?since=none';
  const signed = signRequest(secret, 'GET', path);
  const captured = await new Promise<Buffer>((resolve, reject) => {
    get(new URL(path, origin.url), { headers: { ...signed } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject);
  });
  const tamper = (from: string, to: string): Buffer => {
    const at = captured.indexOf(from);
    assert.ok(at > 0, `${from} is in the stream`);
    const copy = Buffer.from(captured);
    copy.write(to, at, 'latin1');
    return copy;
  };
  for (const [what, tar, reason] of [
    ['content', tamper('MARKER-1234', 'MARKER-9999'), /content \(sha256\) does not match/],
    ['mode', tamper('SF.mode=644', 'SF.mode=666'), /metadata does not match/],
  ] as const) {
    const peer = await startHostilePeer(t, secret, tar, { header: '', trailer: '' });
    const answer = await refusal(pullSnapshot({ url: peer, secret, name: 'vol', into: target, fsync: false }));
    assert.equal(answer.code, ErrorCodes.invalidInput, `${what}: ${answer.message}`);
    assert.match(answer.message, reason);
    assert.equal(await fingerprint(target), before);
  }
  // The genuine stream with a wrong signature (a body not made with the cluster secret).
  const forger = await startHostilePeer(t, secret, captured, { header: 'forged', trailer: 'forged' });
  const forged = await refusal(pullSnapshot({ url: forger, secret, name: 'vol', into: target, fsync: false }));
  assert.match(forged.message, /not signed with the cluster secret/);
  assert.equal(await fingerprint(target), before);

  // A peer without the secret cannot feed a pulling agent a copy, even a genuine one.
  const impostor = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-tar', 'x-sf-base': 'none' });
    res.end(captured);
  });
  await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
  const impostorUrl = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
  await assert.rejects(
    pullSnapshot({ url: impostorUrl, secret, name: 'vol', into: target, fsync: false }),
    (error: unknown) =>
      error instanceof VolumeTransferError && /not signed with the cluster secret/.test(error.message),
  );
  assert.equal(await fingerprint(target), before);

  // A wrong secret gets a 401, and the pulling side creates nothing.
  await assert.rejects(
    pullSnapshot({ url: origin.url, secret: `${secret}-wrong`, name: 'vol', into: join(root, 'never'), fsync: false }),
    (error: unknown) => error instanceof VolumeTransferError && error.status === 401,
  );
  assert.deepEqual(await listNames(root), ['source', 'source.sf-transfer', 'target', 'target.sf-transfer']);
});
