import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assignmentCodec, EventLog, readRecord } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { removeClusterResources, volumeExists } from '@service-foundry/test-support/docker';
import { AppliedReplicas } from '../src/applied-replicas.js';
import { labelKeys, type NodeIdentity, nodeLabels } from '../src/container-spec.js';
import { DockerRuntime } from '../src/docker-runtime.js';
import { ReplicaTeardown } from '../src/replica-teardown.js';
import { replicaVolumeName } from '../src/replica-volumes.js';
import { StatusWriter } from '../src/status-writer.js';
import { assignmentFor } from './replication-helpers.js';

/**
 * A removal deletes the volume in use and keeps the volumes superseded by rebuilds. Run
 * again for the same assignment version — it failed on etcd after deleting the volume, or
 * a pass read the mirror's copy of the assignment it had just deleted — it must not take
 * the newest superseded volume for the one in use (real etcd, real Docker volumes).
 */
describe('a removal run twice keeps the superseded volume', () => {
  const docker = new DockerRuntime('/var/run/docker.sock');
  let etcd: TestEtcd;
  before(async () => {
    etcd = await startTestEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  it('deletes the rebuilt volume once; the demoted primary’s volume stays on every later run', async (t) => {
    const { client } = etcd;
    const keys = uniqueKeyspace();
    const identity: NodeIdentity = { clusterId: uniqueId('cl'), node: uniqueId('rm'), address: '127.0.0.1' };
    t.after(() => removeClusterResources(identity.clusterId));
    const instanceId = uniqueId('inst');
    const ref = { instanceId, ordinal: 0 };
    const selector = { ...nodeLabels(identity), [labelKeys.instance]: instanceId, [labelKeys.ordinal]: '0' };
    // Generation 0 as a demoted primary leaves it: its first volume, and the rebuild's at epoch 7.
    const superseded = replicaVolumeName(identity.node, ref, 0);
    const inUse = replicaVolumeName(identity.node, ref, 0, 7);
    await docker.ensureVolume(superseded, { ...selector, [labelKeys.generation]: '0' });
    await docker.ensureVolume(inUse, { ...selector, [labelKeys.generation]: '0', [labelKeys.rebuildEpoch]: '7' });

    const key = keys.assignment(identity.node, instanceId, 0);
    await client
      .put(key)
      .value(JSON.stringify(assignmentFor(instanceId, 0, { desired: 'removed' })))
      .exec();
    const read = await readRecord(client, assignmentCodec, key);
    assert.ok(read);
    const lease = client.lease(30, { autoKeepAlive: false });
    const leaseId = await lease.grant();
    t.after(() => lease.revoke());
    const deleted: string[] = [];
    const teardown = new ReplicaTeardown({
      client,
      keys,
      docker,
      statuses: new StatusWriter(client, keys, identity.node, async () => leaseId, silentLogger()),
      identity,
      events: new EventLog(client, keys, 'test'),
      log: silentLogger(),
      applied: new AppliedReplicas(),
      assignmentDeleted: (_ref, modRevision) => deleted.push(modRevision),
    });

    await teardown.remove(ref, read, undefined, true);
    assert.equal(await volumeExists(inUse), false, 'the volume in use is removed');
    assert.equal(await volumeExists(superseded), true, 'the superseded volume is kept');
    assert.equal(await readRecord(client, assignmentCodec, key), undefined, 'the assignment is deleted');
    assert.deepEqual(deleted, [read.modRevision], 'the watcher is told which version was deleted here');

    // The same version again, as a stale read hands it over.
    await teardown.remove(ref, read, undefined, true);
    assert.equal(await volumeExists(superseded), true, 'still kept after the removal ran again');
  });
});
