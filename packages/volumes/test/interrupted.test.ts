import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { pullSnapshot, VolumeTransferError, workDirFor } from '../src/index.js';
import {
  fingerprint,
  listNames,
  outlastRacyWindow,
  randomContent,
  startTestServer,
  testSecret,
  writeFiles,
} from './helpers.js';

const run = promisify(execFile);

/**
 * A TCP proxy to `targetPort` that cuts the connection (destroys both sockets) once
 * `cutAfter` bytes of answers went through.
 */
async function cuttingProxy(
  t: TestContext,
  targetPort: number,
  cutAfter: number,
): Promise<{ url: string; cut: () => boolean }> {
  let cut = false;
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let relayed = 0;
    const relay = (from: Socket, to: Socket, counted: boolean) =>
      from.on('data', (chunk: Buffer) => {
        if (counted) relayed += chunk.length;
        if (relayed > cutAfter) {
          cut = true;
          client.destroy();
          upstream.destroy();
          return;
        }
        to.write(chunk);
      });
    relay(client, upstream, false);
    relay(upstream, client, true);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  );
  const address = proxy.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, cut: () => cut };
}

async function makeVolume(dir: string, seed: string): Promise<void> {
  const files: Record<string, Buffer | string> = { 'seed.txt': seed };
  for (let i = 0; i < 40; i++) files[`segments/${i}`] = randomContent(512 * 1024);
  await writeFiles(dir, files);
}

test('a pull cut midway leaves the copy as it was, and simply repeating it succeeds', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await makeVolume(source, 'one');
  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  const into = join(root, 'copy');
  await outlastRacyWindow();
  await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  const copyBefore = await fingerprint(into, { dirMtimes: true });

  await makeVolume(source, 'two');
  await outlastRacyWindow();
  const proxy = await cuttingProxy(t, server.port, 8 * 1024 * 1024);
  await assert.rejects(
    pullSnapshot({ url: proxy.url, secret, name: 'data', into, fsync: false }),
    (error: unknown) => error instanceof VolumeTransferError,
  );
  assert.ok(proxy.cut(), 'the proxy cut the transfer');
  assert.equal(await fingerprint(into, { dirMtimes: true }), copyBefore, 'the copy is untouched');
  assert.ok(!(await listNames(workDirFor(into).root)).includes('staging'), 'no staging left');

  const again = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(again.mode, 'delta');
  assert.equal(again.files, 41);
  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
});

test('a pull can be aborted with its signal, leaving the copy as it was', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await makeVolume(source, 'one');
  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  const into = join(root, 'copy');
  await writeFiles(into, { 'previous.txt': 'previous copy' });
  const before = await fingerprint(into, { dirMtimes: true });
  const abort = new AbortController();
  abort.abort();
  await assert.rejects(
    pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false, signal: abort.signal }),
  );
  assert.equal(await fingerprint(into, { dirMtimes: true }), before);
});

test('a swap interrupted between its two renames is finished or undone by the next transfer', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await makeVolume(source, 'one');
  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  const into = join(root, 'copy');
  const work = workDirFor(into);
  await outlastRacyWindow();
  await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  const copied = await fingerprint(into, { dirMtimes: true });

  // Crash after "move the old copy aside", before the staging copy was marked complete:
  // the old copy goes back, and the next pull is a delta against it.
  await rename(into, work.previous);
  const resumed = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(resumed.mode, 'delta');
  assert.equal(resumed.files, 0);
  assert.equal(await fingerprint(into, { dirMtimes: true }), copied);

  // Crash after the staging copy was verified and marked complete: it goes in.
  await run('cp', ['-a', into, work.staging]);
  await writeFile(join(work.staging, 'seed.txt'), 'from the staging copy');
  await writeFile(work.completeMarker, '');
  await rename(into, work.previous);
  await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
  await waitFor(async () => (await listNames(work.root)).join() === 'manifests,stat-cache.json', {
    description: 'the old copy to be deleted in the background',
    timeoutMs: 10_000,
  });
});
