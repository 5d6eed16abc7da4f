import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backupVolumeSource, nodeCodec, readRecord } from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, tempDirFor, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { pullSnapshot, VolumeTransferError } from '@service-foundry/volumes';
import { DirectoryBackupStore } from '../src/backups/index.js';
import { compileAgentConfig, type RunningAgent } from '../src/index.js';
import { startTestAgent } from './helpers.js';

/**
 * The agent's volume server as `sf up` configures it (agent config `volumes.tls`): HTTPS
 * with the node's volume certificate on the node address, announced as an `https://` URL
 * in the node record, accepting only peers that present a volume certificate of the same
 * CA, on top of the cluster secret. The copy it serves here is a backup in its store (no
 * container needed): what a restore on another node pulls.
 */
describe('an agent serves volumes over mutual TLS only', () => {
  const secret = 'a-cluster-volume-secret-0123456789';
  let etcd: TestEtcd;
  let pki: TestPki;
  let otherCa: TestPki;

  before(async () => {
    etcd = await startTestEtcd();
    const nodes = [
      { name: 'vol-a', address: '127.0.0.1' },
      { name: 'vol-b', address: '127.0.0.1' },
    ];
    pki = await makeTestPki(nodes);
    otherCa = await makeTestPki(nodes);
  });
  after(async () => {
    await etcd?.stop();
    await pki?.remove();
    await otherCa?.remove();
  });

  test('a peer with its volume certificate pulls a backup; another CA, a service certificate and plain HTTP cannot', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('vol-a');
    const backupDir = await tempDirFor(t, 'sf-agent-backups');
    const store = new DirectoryBackupStore({ root: backupDir, fsync: false });
    const instanceId = uniqueId('inst');
    const backupId = 'bk-1';
    const tree = await store.destination(instanceId, backupId);
    await mkdir(join(tree, 'data'), { recursive: true });
    await writeFile(join(tree, 'data', 'rows.txt'), 'rows that must only travel encrypted\n');
    await store.complete(instanceId, backupId, {
      figures: { mode: 'full', bytes: 0, wireBytes: 0, files: 1, deleted: 0, durationMs: 1, mbPerSecond: 0 },
      takenAt: new Date().toISOString(),
      serviceName: 'test',
      planName: 'tiny',
      method: 'hook',
    });

    const agent: RunningAgent = await startTestAgent(etcd.endpoint, keys, {
      node,
      address: '127.0.0.1',
      volumes: { secret, backupDir, fsync: false, tls: pki.volumeTls('vol-a') },
    });
    t.after(() => agent.stop());
    const record = await readRecord(etcd.client, nodeCodec, keys.node(node));
    const url = record?.value.volumeUrl;
    assert.match(url ?? '', /^https:\/\/127\.0\.0\.1:\d+$/, 'the node announces an https volume URL');
    assert.ok(url);
    const name = backupVolumeSource(instanceId, backupId);
    const root = await tempDirFor(t, 'sf-agent-pulls');

    // The peer node's own volume certificate: the copy arrives.
    const into = join(root, 'peer');
    const result = await pullSnapshot({ url, secret, fsync: false, name, into, tls: pki.volumeTls('vol-b') });
    assert.equal(result.files, 1);
    assert.equal(await readFile(join(into, 'data', 'rows.txt'), 'utf8'), 'rows that must only travel encrypted\n');

    const refused = async (tls: Parameters<typeof pullSnapshot>[0]['tls'], target: string) => {
      await assert.rejects(
        pullSnapshot({ url, secret, fsync: false, name, into: join(root, target), ...(tls ? { tls } : {}) }),
        (error: unknown) => {
          assert.ok(error instanceof VolumeTransferError, String(error));
          return true;
        },
      );
    };
    // Certificates of another CA: the agent's server does not verify for the client, and
    // the client's certificate does not verify for the server.
    await refused(otherCa.volumeTls('vol-b'), 'other-ca');
    await refused({ ...otherCa.volumeTls('vol-b'), caFile: pki.caFile }, 'foreign-client');
    // The node's service certificate (what its containers hold) is for serving only.
    await refused({ ...pki.serviceTls('vol-b') }, 'service-cert');
    // Plain HTTP to the TLS port.
    await assert.rejects(
      pullSnapshot({ url: url.replace('https:', 'http:'), secret, fsync: false, name, into: join(root, 'plain') }),
      VolumeTransferError,
    );
  });

  test('the config requires TLS for volumes; certificate paths must be absolute', () => {
    const base = { etcdEndpoints: [etcd.endpoint], secretsKeyFile: '/x/secrets.key', node: 'n1' };
    assert.throws(
      () => compileAgentConfig({ ...base, volumes: { secret } }),
      /\/volumes must have required property 'tls'/,
    );
    assert.throws(
      () => compileAgentConfig({ ...base, serviceTls: { caFile: 'ca.crt', certFile: '/c', keyFile: '/k' } }),
      /\/serviceTls\/caFile must match pattern/,
    );
    const ok = compileAgentConfig({
      ...base,
      serviceTls: pki.serviceTls('vol-a'),
      volumes: { secret, tls: pki.volumeTls('vol-a') },
    });
    assert.deepEqual(ok.volumes?.tls, pki.volumeTls('vol-a'));
  });

  test('an agent whose volume certificate files are missing does not start', async () => {
    const keys = uniqueKeyspace();
    await assert.rejects(
      startTestAgent(etcd.endpoint, keys, {
        node: uniqueId('vol-x'),
        volumes: {
          secret,
          backupDir: '/nonexistent-sf-backups',
          tls: { caFile: pki.caFile, certFile: '/nonexistent/volumes.crt', keyFile: '/nonexistent/volumes.key' },
        },
      }),
      /certFile \/nonexistent\/volumes\.crt: ENOENT/,
    );
  });
});
