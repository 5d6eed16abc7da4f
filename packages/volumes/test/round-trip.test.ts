import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { tempDirFor } from '@service-foundry/test-support';
import { buildManifest, pullSnapshot } from '../src/index.js';
import { fingerprint, randomContent, startTestServer, testSecret, writeFiles } from './helpers.js';

const run = promisify(execFile);

/** Files, nested folders, symlinks (file, folder, dangling), unusual modes and owners, an empty file and folder, 50 MB. */
async function makeVolume(dir: string): Promise<void> {
  await writeFiles(dir, {
    PG_VERSION: '15\n',
    'base/1/1259': randomContent(300_000),
    'base/1/1259_fsm': randomContent(24_576),
    'global/pg_control': randomContent(8192),
    'deep/a/b/c/d/e/f/g/leaf.txt': 'deep\n',
    'naïve café ☕.txt': 'unicode name\n',
    'big.bin': randomContent(50 * 1024 * 1024),
  });
  await writeFile(join(dir, 'empty'), '');
  await mkdir(join(dir, 'empty-dir'));
  await mkdir(join(dir, 'private'), { mode: 0o700 });
  await writeFile(join(dir, 'private/secret'), 'only owner');
  await chmod(join(dir, 'private/secret'), 0o400);
  await chmod(join(dir, 'private'), 0o700);
  await chmod(join(dir, 'base/1/1259'), 0o600);
  await writeFiles(dir, { 'bin/run.sh': '#!/bin/sh\necho hi\n' });
  await chmod(join(dir, 'bin/run.sh'), 0o755);
  await writeFile(join(dir, 'zero-mode'), 'x');
  await chmod(join(dir, 'zero-mode'), 0o000);
  await symlink('base/1/1259', join(dir, 'link-to-file'));
  await symlink('deep/a', join(dir, 'link-to-dir'));
  await symlink('does-not-exist', join(dir, 'dangling'));
  await symlink('../../PG_VERSION', join(dir, 'deep/a/up-link'));
  await chown(join(dir, 'base'), 999, 999);
  await chown(join(dir, 'base/1/1259'), 999, 998);
  await utimes(join(dir, 'PG_VERSION'), new Date('2020-02-03T04:05:06.789Z'), new Date('2020-02-03T04:05:06.789Z'));
  await chmod(dir, 0o750);
}

test('a volume makes the round trip by pull, and back again from the copy, entry for entry', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await mkdir(source);
  await makeVolume(source);
  const secret = testSecret();
  const into = join(root, 'pulled');
  const server = await startTestServer(t, secret, { data: source, copy: into });

  const progress: number[] = [];
  const pulled = await pullSnapshot({
    url: server.url,
    secret,
    name: 'data',
    into,
    fsync: false,
    onProgress: (p) => progress.push(p.bytes),
  });
  assert.equal(pulled.mode, 'full');
  assert.equal(pulled.base, null);
  assert.ok(pulled.bytes > 50 * 1024 * 1024, `content bytes ${pulled.bytes}`);
  assert.ok(pulled.files >= 10);
  assert.ok(pulled.mbPerSecond > 0);
  assert.equal(progress.at(-1), pulled.bytes, 'the last progress report covers every byte');

  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
  const sourceManifest = await buildManifest(source);
  assert.equal(pulled.manifestId, sourceManifest.id, 'the copy holds exactly the manifest of the source');
  assert.equal((await buildManifest(into)).id, sourceManifest.id);
  assert.equal((await lstat(into)).mode & 0o7777, 0o750, 'the root folder keeps its mode');
  assert.equal((await lstat(join(into, 'zero-mode'))).mode & 0o7777, 0);
  assert.equal((await lstat(join(into, 'base/1/1259'))).uid, 999);
  assert.equal((await lstat(join(into, 'PG_VERSION'))).mtime.toISOString(), '2020-02-03T04:05:06.789Z');

  const backTo = join(root, 'back');
  const back = await pullSnapshot({ url: server.url, secret, name: 'copy', into: backTo, fsync: false });
  assert.equal(back.mode, 'full', 'there was no copy yet');
  assert.equal(back.manifestId, sourceManifest.id);
  assert.equal(await fingerprint(backTo, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
  const sent = server.events.find((e) => e.volume === 'copy');
  assert.equal(sent?.ok, true);
  assert.equal(sent?.bytes, back.bytes);
});

test('devices, FIFOs and sockets are left out of a manifest with a reason, and the rest still travels', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await writeFiles(source, { 'keep.txt': 'kept' });
  await run('mkfifo', [join(source, 'fifo')]);
  await run('mknod', [join(source, 'null-device'), 'c', '1', '3']);
  const socketServer = createServer();
  await new Promise<void>((resolve) => socketServer.listen(join(source, 'sock'), resolve));
  t.after(() => new Promise<void>((resolve) => socketServer.close(() => resolve())));

  const manifest = await buildManifest(source);
  const reasons = Object.fromEntries(manifest.skipped.map((s) => [s.path, s.reason]));
  assert.match(reasons.fifo ?? '', /FIFO/);
  assert.match(reasons['null-device'] ?? '', /character device/);
  assert.match(reasons.sock ?? '', /socket/);
  assert.deepEqual(
    manifest.entries.map((e) => e.path),
    ['.', 'keep.txt'],
  );

  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  const into = join(root, 'copy');
  const result = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(result.files, 1);
  assert.equal(await readFile(join(into, 'keep.txt'), 'utf8'), 'kept');
  const copied = await buildManifest(into);
  assert.deepEqual(
    copied.entries.map((e) => e.path),
    ['.', 'keep.txt'],
  );
  assert.equal(copied.skipped.length, 0);
});
