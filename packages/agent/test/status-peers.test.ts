import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readRecord, statusCodec } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { StatusWriter } from '../src/status-writer.js';

/**
 * C2's publishing side (docs/failover.md): every status a failsafe agent writes carries what
 * it knows of the instance's other replicas, and a relocation's old node never writes the
 * shared status key again once the replica is the new node's (real etcd).
 */
describe('statuses carry the failsafe peers; a relocated replica’s old node stays silent', () => {
  let etcd: TestEtcd;
  before(async () => {
    etcd = await startTestEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  const setup = async () => {
    const keys = uniqueKeyspace();
    const lease = etcd.client.lease(30, { autoKeepAlive: false });
    const leaseId = await lease.grant();
    const writer = new StatusWriter(etcd.client, keys, 'node-x', async () => leaseId, silentLogger());
    const instanceId = uniqueId('inst');
    const ref = { instanceId, ordinal: 0 };
    const read = async () => (await readRecord(etcd.client, statusCodec, keys.status(instanceId, 0)))?.value;
    return { keys, lease, writer, instanceId, ref, read };
  };

  it('stamps the peers on every status, and rewrites it when they change for a replica placed here', async () => {
    const { lease, writer, instanceId, ref, read } = await setup();
    try {
      let peers = { nodes: ['node-y'], revision: '40' };
      writer.reportPeers(() => peers);
      await writer.set(ref, { state: 'running', message: 'ready', containerId: 'c0' });
      assert.deepEqual((await read())?.peers, { nodes: ['node-y'], revision: '40' });
      peers = { nodes: ['node-y', 'node-z'], revision: '55' };
      await writer.peersChanged(instanceId, new Set([1]));
      assert.deepEqual((await read())?.peers?.revision, '40', 'ordinal 0 is not placed here: not rewritten');
      await writer.peersChanged(instanceId, new Set([0]));
      assert.deepEqual((await read())?.peers, { nodes: ['node-y', 'node-z'], revision: '55' });
    } finally {
      await lease.revoke();
    }
  });

  it('forget: after a relocation, neither a peers change nor a rewrite under a new lease touches the key', async () => {
    const { keys, lease, writer, instanceId, ref, read } = await setup();
    try {
      writer.reportPeers(() => ({ nodes: [], revision: '7' }));
      await writer.set(ref, { state: 'stopped', message: 'stopped; the volume is kept', containerId: 'c0' });
      // The new node's status, as its agent writes it after the switch.
      const fresh = { ...(await read()), node: 'node-y', state: 'running', message: 'ready' };
      await etcd.client.put(keys.status(instanceId, 0)).value(JSON.stringify(fresh)).exec();
      writer.forget(ref);
      await writer.peersChanged(instanceId, new Set([0]));
      await writer.rewriteAll();
      const now = await read();
      assert.equal(now?.node, 'node-y');
      assert.equal(now?.state, 'running');
      assert.deepEqual(writer.known(), []);
    } finally {
      await lease.revoke();
    }
  });
});
