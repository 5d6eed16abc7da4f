import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { connectEtcd, type EtcdProcess, etcdPeerUrl, freePort, startEtcd } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { restoreSnapshot, saveSnapshot } from '../src/cluster/etcd-snapshot.js';

/** A real one-member etcd on fixed ports in `dir`, stopped when the test ends. */
async function etcdIn(t: { after(fn: () => Promise<void>): void }, dir: string) {
  const ports = { clientPort: await freePort(), peerPort: await freePort() };
  let running: EtcdProcess | undefined;
  const start = async () => {
    running = await startEtcd({ dataDir: join(dir, 'etcd'), ...ports });
    return running;
  };
  t.after(async () => {
    await running?.stop();
  });
  return { ports, start, stop: () => running?.stop() ?? Promise.resolve() };
}

it('snapshot, later writes, restore: the keyspace is as it was at the snapshot, and the old data is kept', async (t) => {
  const dir = await tempDirFor(t, 'sf-etcd-snapshot');
  const etcd = await etcdIn(t, dir);
  const first = await etcd.start();
  const client = connectEtcd({ endpoints: [first.endpoint] });
  await client.put('/sf/before').value('kept');
  const saved = await saveSnapshot(first.endpoint, undefined, join(dir, 'snap.db'));
  assert.ok(saved.revision > 1 && saved.totalKey >= 1, JSON.stringify(saved));
  assert.match(saved.sha256, /^[0-9a-f]{64}$/);
  assert.equal((await stat(saved.file)).mode & 0o777, 0o600, 'the snapshot is private');
  await client.put('/sf/after').value('gone after the restore');
  client.close();
  await etcd.stop();

  const restored = await restoreSnapshot(saved.file, join(dir, 'etcd'), etcdPeerUrl(etcd.ports.peerPort, false));
  assert.equal(restored.revision, saved.revision);
  assert.ok(restored.keptAs, 'the previous data folder is kept');
  assert.ok((await readdir(restored.keptAs)).includes('member'));

  const second = await etcd.start();
  const again = connectEtcd({ endpoints: [second.endpoint] });
  try {
    assert.equal(await again.get('/sf/before').string(), 'kept');
    assert.equal(await again.get('/sf/after').string(), null);
    await again.put('/sf/new').value('writable');
    assert.equal(await again.get('/sf/new').string(), 'writable');
  } finally {
    again.close();
  }
});

it('refuses to overwrite a file; a restore from a file that is not a snapshot changes nothing', async (t) => {
  const dir = await tempDirFor(t, 'sf-etcd-snapshot-bad');
  const etcd = await etcdIn(t, dir);
  const running = await etcd.start();
  const existing = join(dir, 'exists.db');
  await writeFile(existing, 'mine');
  await assert.rejects(saveSnapshot(running.endpoint, undefined, existing), /exists/);
  await assert.rejects(saveSnapshot(running.endpoint, undefined, join(dir, 'no-such-dir', 's.db')), /does not exist/);
  await etcd.stop();

  const before = await readdir(dir);
  await assert.rejects(
    restoreSnapshot(existing, join(dir, 'etcd'), etcdPeerUrl(etcd.ports.peerPort, false)),
    /etcdctl snapshot status/,
  );
  assert.deepEqual(await readdir(dir), before, 'no folder made, none moved');
  await assert.rejects(
    restoreSnapshot(join(dir, 'missing.db'), join(dir, 'etcd'), etcdPeerUrl(etcd.ports.peerPort, false)),
    /no snapshot file/,
  );
});
