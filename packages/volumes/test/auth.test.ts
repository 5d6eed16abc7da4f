import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDirFor } from '@service-foundry/test-support';
import { headerNames, pullSnapshot, signRequest } from '../src/index.js';
import {
  fingerprint,
  listNames,
  packToBuffer,
  randomContent,
  rawRequest,
  startTestServer,
  testSecret,
  writeFiles,
} from './helpers.js';

function errorOf(body: string): string {
  return (JSON.parse(body) as { error: string }).error;
}

test('requests without a valid signature are refused with 401 before anything is read or written', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  const target = join(root, 'target');
  await writeFiles(source, { 'a.txt': 'hello' });
  await writeFiles(target, { 'old.txt': 'previous copy' });
  const targetBefore = await fingerprint(target, { dirMtimes: true });
  const secret = testSecret();
  const server = await startTestServer(t, secret, { vol: source, dst: target });

  const manifestPath = '/volumes/vol/manifest';
  const unsigned = await rawRequest(server.url, { method: 'GET', path: manifestPath });
  assert.equal(unsigned.status, 401);
  assert.match(errorOf(unsigned.body), /not signed/);

  const wrongSecret = await rawRequest(server.url, { method: 'GET', path: manifestPath, secret: testSecret() });
  assert.equal(wrongSecret.status, 401);
  assert.match(errorOf(wrongSecret.body), /bad signature/);

  const stale = signRequest(secret, 'GET', manifestPath, Date.now() - 5 * 60_000);
  const old = await rawRequest(server.url, { method: 'GET', path: manifestPath, headers: { ...stale } });
  assert.equal(old.status, 401);
  assert.match(errorOf(old.body), /outside the window/);

  const once = signRequest(secret, 'GET', manifestPath);
  const first = await rawRequest(server.url, { method: 'GET', path: manifestPath, headers: { ...once } });
  assert.equal(first.status, 200);
  const replay = await rawRequest(server.url, { method: 'GET', path: manifestPath, headers: { ...once } });
  assert.equal(replay.status, 401);
  assert.match(errorOf(replay.body), /replayed/);

  const otherPath = signRequest(secret, 'GET', '/volumes/vol/manifest');
  const moved = await rawRequest(server.url, {
    method: 'GET',
    path: '/volumes/dst/manifest',
    headers: { ...otherPath },
  });
  assert.equal(moved.status, 401, 'a signature is for one path');

  const otherQuery = signRequest(secret, 'GET', '/volumes/vol/snapshot?since=none');
  const requery = await rawRequest(server.url, {
    method: 'GET',
    path: `/volumes/vol/snapshot?since=${'0'.repeat(64)}`,
    headers: { ...otherQuery },
  });
  assert.equal(requery.status, 401, 'a signature covers the query');

  const garbage = await rawRequest(server.url, {
    method: 'GET',
    path: manifestPath,
    headers: { [headerNames.timestamp]: 'now', [headerNames.nonce]: 'x', [headerNames.signature]: 'zz' },
  });
  assert.equal(garbage.status, 401);

  const unknownUnsigned = await rawRequest(server.url, { method: 'GET', path: '/admin' });
  assert.equal(unknownUnsigned.status, 401, 'unsigned requests learn nothing, not even which routes exist');
  const unknownSigned = await rawRequest(server.url, { method: 'GET', path: '/admin', secret });
  assert.equal(unknownSigned.status, 404);
  const missingVolume = await rawRequest(server.url, { method: 'GET', path: '/volumes/nope/manifest', secret });
  assert.equal(missingVolume.status, 404);

  // An unsigned PUT with a real-looking body, and a PUT signed for GET.
  const body = await packToBuffer((p) => {
    p.entry({ name: 'evil.txt', size: 4 }, Buffer.from('evil'));
  });
  const unsignedPut = await rawRequest(server.url, { method: 'PUT', path: '/volumes/dst?base=none', body });
  assert.equal(unsignedPut.status, 401);
  const signedForGet = signRequest(secret, 'GET', '/volumes/dst?base=none');
  const wrongMethod = await rawRequest(server.url, {
    method: 'PUT',
    path: '/volumes/dst?base=none',
    headers: { ...signedForGet },
    body: randomContent(100_000),
  });
  assert.equal(wrongMethod.status, 401);
  assert.equal(await fingerprint(target, { dirMtimes: true }), targetBefore);
  assert.deepEqual(await listNames(root), ['source', 'source.sf-transfer', 'target'], 'no work folder for the target');
  assert.equal(server.events.length, 0, 'no transfer started');
});

test('a PUT that asks to continue is refused before its body is sent', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const target = join(root, 'target');
  const secret = testSecret();
  const server = await startTestServer(t, secret, { dst: target });
  const outcome = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = request(new URL('/volumes/dst?base=none', server.url), {
      method: 'PUT',
      headers: { expect: '100-continue', 'content-type': 'application/x-tar' },
    });
    req.on('continue', () => {
      continued = true;
      req.end(randomContent(1024));
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, continued }));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.deepEqual(outcome, { status: 401, continued: false });
  assert.deepEqual(await listNames(root), []);
});

test('a server is pull-only: it refuses a signed push and writes nothing', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  const target = join(root, 'target');
  await writeFiles(source, { 'a.txt': 'hello' });
  await writeFiles(target, { 'old.txt': 'previous copy' });
  const before = await fingerprint(target, { dirMtimes: true });
  const secret = testSecret();
  const server = await startTestServer(t, secret, { dst: target, vol: source });

  const unsigned = await rawRequest(server.url, { method: 'PUT', path: '/volumes/dst?base=none' });
  assert.equal(unsigned.status, 401, 'authentication still comes first');
  const body = await packToBuffer((p) => {
    p.entry({ name: 'a.txt', size: 5 }, Buffer.from('hello'));
  });
  const pushed = await rawRequest(server.url, { method: 'PUT', path: '/volumes/dst?base=none', secret, body });
  assert.equal(pushed.status, 405);
  assert.match(errorOf(pushed.body), /accepts no pushes/);
  assert.equal(await fingerprint(target, { dirMtimes: true }), before, 'the copy on the server is untouched');
  const pulled = await pullSnapshot({ url: server.url, secret, name: 'vol', into: join(root, 'pulled') });
  assert.equal(pulled.files, 1, 'pulling still works');
});
