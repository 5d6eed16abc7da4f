import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { InvalidInputError } from '@service-foundry/core';
import { suiteTempDir, tempDirFor } from '@service-foundry/test-support';
import { makeTestPki, type TestPki, type TlsFiles } from '@service-foundry/test-support/test-pki';
import { fetchManifest, pullSnapshot, signRequest, startVolumeServer, VolumeTransferError } from '../src/index.js';
import { fingerprint, randomContent, testSecret, writeFiles } from './helpers.js';

const run = promisify(execFile);

/** The agents' rule: only certificates named like a volume peer get past the handshake. */
const peerNames = /^sf-volumes\.[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * A client certificate of `ca` with another name than a volume peer's (as an etcd client's
 * is): issued with openssl straight from the CA key, clientAuth usage.
 */
async function otherClientCertificate(pki: TestPki, dir: string): Promise<TlsFiles> {
  const files = { caFile: pki.caFile, certFile: join(dir, 'other.crt'), keyFile: join(dir, 'other.key') };
  const csr = join(dir, 'other.csr');
  const ext = join(dir, 'other.ext');
  await run('sh', ['-c', `printf 'extendedKeyUsage=clientAuth\\n' > '${ext}'`]);
  await run('openssl', [
    ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', files.keyFile, '-out', csr, '-subj', '/CN=sf-router'],
  ]);
  await run('openssl', [
    ...['x509', '-req', '-in', csr, '-CA', pki.caFile, '-CAkey', join(pki.dir, 'ca.key')],
    ...['-CAcreateserial', '-days', '1', '-extfile', ext, '-out', files.certFile],
  ]);
  return files;
}

/** One signed GET over TLS with the given client files (or none), as a peer would send it. */
function tlsGet(url: string, path: string, secret: string, client?: TlsFiles & { ca: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(path, url);
    const req = request(
      target,
      {
        method: 'GET',
        headers: { ...signRequest(secret, 'GET', target.pathname) },
        ca: client?.ca,
        agent: false,
        ...(client ? { cert: readSync(client.certFile), key: readSync(client.keyFile) } : {}),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function readSync(path: string): Buffer {
  return readFileSync(path);
}

describe('volume transfers over TLS (mutual, cluster CA, plus the HMAC)', () => {
  const nodes = [
    { name: 'node-a', address: '127.0.0.1' },
    { name: 'node-b', address: '127.0.0.1' },
  ];
  const folder = suiteTempDir('sf-volumes-tls');
  let pki: TestPki;
  let otherCa: TestPki;

  before(async () => {
    pki = await makeTestPki(nodes);
    otherCa = await makeTestPki(nodes);
  });
  // The PKIs live in their own temp folders.
  after(async () => {
    await pki?.remove();
    await otherCa?.remove();
  });

  test('a pull over TLS copies the volume exactly; the URL is https and the server names its address', async (t) => {
    const root = await tempDirFor(t, 'sf-volumes');
    const source = join(root, 'source');
    const target = join(root, 'target');
    await writeFiles(source, { 'a.txt': 'hello over TLS', 'dir/big.bin': randomContent(3 * 1024 * 1024) });
    const secret = testSecret();
    const server = await startVolumeServer({
      secret,
      fsync: false,
      tls: pki.volumeTls('node-a'),
      clientNamePattern: peerNames,
      resolveVolumeDir: (name) => (name === 'vol' ? source : undefined),
    });
    t.after(() => server.close());
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    const result = await pullSnapshot({
      url: server.url,
      secret,
      fsync: false,
      name: 'vol',
      into: target,
      tls: pki.volumeTls('node-b'),
    });
    assert.equal(result.mode, 'full');
    assert.equal(await fingerprint(target), await fingerprint(source));
    const manifest = await fetchManifest({ url: server.url, secret, name: 'vol', tls: pki.volumeTls('node-b') });
    assert.equal(manifest?.id, result.manifestId);
  });

  test('refused: a server of another CA, a client of another CA, no client certificate, another name', async (t) => {
    const root = await tempDirFor(t, 'sf-volumes');
    const source = join(root, 'source');
    await writeFiles(source, { 'secret.txt': 'not for impostors' });
    const secret = testSecret();
    const server = await startVolumeServer({
      secret,
      fsync: false,
      tls: pki.volumeTls('node-a'),
      clientNamePattern: peerNames,
      resolveVolumeDir: (name) => (name === 'vol' ? source : undefined),
    });
    t.after(() => server.close());
    const path = '/volumes/vol/manifest';

    // The client trusts another CA: this server's certificate does not verify, nothing is made.
    const into = join(root, 'from-impostor');
    await assert.rejects(
      pullSnapshot({ url: server.url, secret, fsync: false, name: 'vol', into, tls: otherCa.volumeTls('node-b') }),
      (error: unknown) =>
        error instanceof VolumeTransferError && /self[- ]signed|unable to verify|certificate/i.test(error.message),
    );
    await assert.rejects(access(into), { code: 'ENOENT' });

    // A client whose certificate another CA issued (it trusts the right CA for the server):
    // the server ends the handshake; the signature never gets a look.
    const foreign = { ...otherCa.volumeTls('node-b'), ca: readSync(pki.caFile) };
    await assert.rejects(tlsGet(server.url, path, secret, foreign));

    // No client certificate at all.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = request(new URL(path, server.url), { ca: readSync(pki.caFile), agent: false }, resolve);
        req.on('error', reject);
        req.end();
      }),
    );

    // A certificate of the right CA, but not a volume peer's (an etcd client's name): 403
    // before the signature is checked.
    const other = await otherClientCertificate(pki, root);
    assert.equal(await tlsGet(server.url, path, secret, { ...other, ca: readSync(pki.caFile) }), 403);

    // The right certificate, the right secret: 200.
    const peer = { ...pki.volumeTls('node-b'), ca: readSync(pki.caFile) };
    assert.equal(await tlsGet(server.url, path, secret, peer), 200);
    // The right certificate and a wrong secret: the HMAC still decides.
    assert.equal(await tlsGet(server.url, path, testSecret(), peer), 401);
  });

  test('the server must name the address dialled (verify-full), and there is no downgrade to http', async (t) => {
    const root = await tempDirFor(t, 'sf-volumes');
    const source = join(root, 'source');
    await writeFiles(source, { 'a.txt': 'a' });
    const secret = testSecret();
    const server = await startVolumeServer({
      secret,
      fsync: false,
      tls: pki.volumeTls('node-a'),
      resolveVolumeDir: () => source,
    });
    t.after(() => server.close());
    const tls = pki.volumeTls('node-b');

    // The certificate names 127.0.0.1, not localhost.
    const byName = server.url.replace('127.0.0.1', 'localhost');
    await assert.rejects(fetchManifest({ url: byName, secret, name: 'vol', tls }), (error: unknown) =>
      /altnames|does not match|not in the cert/i.test((error as Error).message),
    );
    // With TLS configured, an http URL is refused before anything is sent, and the reverse.
    const plain = server.url.replace('https:', 'http:');
    await assert.rejects(fetchManifest({ url: plain, secret, name: 'vol', tls }), InvalidInputError);
    await assert.rejects(fetchManifest({ url: server.url, secret, name: 'vol' }), InvalidInputError);
    // A plain HTTP client gets no answer from the TLS port.
    await assert.rejects(
      pullSnapshot({ url: plain, secret, fsync: false, name: 'vol', into: join(folder.path, 'plain') }),
      VolumeTransferError,
    );
  });

  test('missing certificate files are a config error naming the file', async () => {
    await assert.rejects(
      startVolumeServer({
        secret: testSecret(),
        tls: { caFile: pki.caFile, certFile: '/nonexistent/volumes.crt', keyFile: '/nonexistent/volumes.key' },
        resolveVolumeDir: () => undefined,
      }),
      /certFile \/nonexistent\/volumes\.crt: ENOENT/,
    );
  });
});
