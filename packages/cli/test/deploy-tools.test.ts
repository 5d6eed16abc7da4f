import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connectEtcd, EtcdPermissionDeniedError, etcdUsers, Keyspace } from '@service-foundry/core';
import { makeTempDir, startTestEtcd, type TempDir, type TestEtcd } from '@service-foundry/test-support';
import { ClusterPki } from '../src/cluster/pki.js';

const run = promisify(execFile);
const cliMain = resolve(import.meta.dirname, '../dist/main.js');

async function sf(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliMain, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/**
 * The tools docs/deploy.md has operators run for a cluster on real hosts: `sf certs` (the
 * same CA code as `sf up`) and `sf etcd-roles` (the same roles as `sf up`), against a real
 * etcd running with those certificates.
 */
describe('sf certs and sf etcd-roles: a multi-host cluster’s certificates and etcd roles', () => {
  let dir: TempDir;
  let pki: ClusterPki;
  let etcd: TestEtcd;

  before(async () => {
    dir = await makeTempDir('sf-deploy-tools');
    pki = new ClusterPki(join(dir.path, 'pki'));
  });
  after(async () => {
    await etcd?.stop();
    await dir?.remove();
  });

  it('sf certs makes the CA and every certificate, naming the hosts given', async () => {
    const made = await sf(
      'certs',
      pki.dir,
      '--node',
      'node-a=10.0.0.11',
      '--node',
      'node-b=10.0.0.12',
      '--etcd-host',
      '10.0.0.10',
      '--router-host',
      'db.example.org',
    );
    assert.equal(made.code, 0, made.stderr);
    const etcdCert = new X509Certificate(await readFile(pki.server.certFile));
    assert.match(etcdCert.subjectAltName ?? '', /IP Address:127\.0\.0\.1, IP Address:10\.0\.0\.10/);
    const service = new X509Certificate(await readFile(pki.serviceTls('node-b').certFile));
    assert.match(service.subjectAltName ?? '', /IP Address:10\.0\.0\.12/);
    assert.match(service.subjectAltName ?? '', /DNS:db\.example\.org/);
    for (const user of [etcdUsers.root, etcdUsers.broker, etcdUsers.agent('node-a'), etcdUsers.agent('node-b')]) {
      assert.equal((await stat(pki.client(user).keyFile)).mode & 0o777, 0o600, `${user}'s key is 0600`);
    }
    assert.equal((await stat(pki.caKeyFile)).mode & 0o777, 0o600);
  });

  it('refuses a node without an address, or a host that is neither an IP nor a DNS name, making nothing', async () => {
    const other = join(dir.path, 'other');
    const noAddress = await sf('certs', other, '--node', 'node-a');
    assert.equal(noAddress.code, 2);
    assert.match(noAddress.stderr, /--node must look like NAME=ADDRESS/);
    const badHost = await sf('certs', other, '--node', 'node-a=10.0.0.11', '--router-host', 'a b');
    assert.equal(badHost.code, 1);
    assert.match(badHost.stderr, /neither an IP address nor a DNS name/);
    await assert.rejects(stat(other), 'nothing was made');
  });

  it('sf etcd-roles gives each component and node its role, then turns authentication on', async () => {
    etcd = await startTestEtcd({ tls: { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) } });
    const root = pki.client(etcdUsers.root);
    const done = await sf(
      'etcd-roles',
      '--etcd',
      etcd.endpoint,
      '--etcd-ca',
      root.caFile,
      '--etcd-cert',
      root.certFile,
      '--etcd-key',
      root.keyFile,
      '--node',
      'node-a',
      '--node',
      'node-b',
    );
    assert.equal(done.code, 0, done.stderr);
    const keys = new Keyspace('/sf');
    const agentA = connectEtcd({ endpoints: [etcd.endpoint], tls: pki.client(etcdUsers.agent('node-a')) });
    const router = connectEtcd({ endpoints: [etcd.endpoint], tls: pki.client(etcdUsers.router) });
    try {
      await agentA.put(keys.node('node-a')).value('{}');
      await assert.rejects(async () => agentA.put(keys.node('node-b')).value('{}'), EtcdPermissionDeniedError);
      await router.get(`${keys.routes()}x`).string();
      await assert.rejects(router.get(keys.secrets()).string(), EtcdPermissionDeniedError);
    } finally {
      agentA.close();
      router.close();
    }
    const bad = await sf('etcd-roles', '--etcd', 'http://127.0.0.1:2379', '--node', 'node-a');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--etcd must list etcd client URLs/);
  });
});
