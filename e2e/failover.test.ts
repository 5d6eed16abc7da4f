import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { killNode, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { docker } from '@service-foundry/test-support/docker';
import { lostWrites, Writer } from '@service-foundry/test-support/writer';

interface Detail {
  id: string;
  phase: string;
  message: string;
  primary: { node: string; epoch: number } | null;
  replicaDetails: Array<{ ordinal: number; node: string; state: string }>;
}

describe('failover of a three-replica Postgres with remote-fsync and required fencing', () => {
  let cluster: TestCluster;
  let uri = '';
  const detail = async (): Promise<Detail> => cluster.sfJson<Detail>('service', 'ha-db', '--json');

  before(async () => {
    cluster = await startCluster(3);
    const created = await cluster.sf('create-service', 'postgres', 'ha-small', 'ha-db');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', 'ha-db', 'writer', '--json');
    assert.equal(key.code, 0, key.stderr);
    uri = (JSON.parse(key.stdout) as { uri: string }).uri;
    await Writer.prepare(uri);
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('loses no acknowledged write when the primary node is killed, and fences it first', async () => {
    const before = await detail();
    assert.equal(before.replicaDetails.filter((r) => r.state === 'running').length, 3);
    const oldPrimary = before.primary;
    assert.ok(oldPrimary);
    const writer = new Writer(uri);
    writer.start();
    try {
      await waitFor(() => writer.acked.length >= 100, { description: '100 acknowledged writes', timeoutMs: 90_000 });
      await killNode(cluster, oldPrimary.node);
      // The fault is complete once the agent and the primary's container are dead.
      const faultAt = Date.now();
      const firstAck = await waitFor(() => writer.firstAckAfter(faultAt), {
        description: 'a write acknowledged by the new primary',
        timeoutMs: 60_000,
      });
      const rto = (firstAck.at - faultAt) / 1000;
      console.log(`# failover RTO (fault -> first acknowledged write through the router): ${rto.toFixed(2)} s`);
      const afterFault = writer.acked.length;
      await waitFor(() => writer.acked.length >= afterFault + 50, { description: '50 more writes', timeoutMs: 90_000 });
    } finally {
      await writer.stop();
    }
    const lost = await lostWrites(uri, writer.acked);
    assert.deepEqual(lost, [], `acknowledged writes lost: ${lost.length} of ${writer.acked.length}`);
    const now = await detail();
    assert.ok(now.primary && now.primary.node !== oldPrimary.node, 'a replica on another node is primary');
    assert.ok(now.primary.epoch > oldPrimary.epoch, 'under a new epoch');
    const events = (await cluster.sf('events', '--json', '--limit', '200')).stdout;
    assert.match(events, /node-fenced/, 'the lost node was fenced before the promotion');
    const history = await cluster.sf('fencing-history', '--node', oldPrimary.node);
    assert.match(history.stdout, /fenced|off/);
  });

  it('the fenced node rejoins as a replica of the new primary after `sf unfence` and `sf up`', async () => {
    const current = await detail();
    const lostNode = ['node-1', 'node-2', 'node-3'].find(
      (n) => !current.replicaDetails.some((r) => r.node === n && r.state === 'running'),
    );
    assert.ok(lostNode);
    const unfence = await cluster.sf('unfence', lostNode);
    assert.equal(unfence.code, 0, unfence.stdout + unfence.stderr);
    const up = await cluster.sf('up');
    assert.equal(up.code, 0, up.stderr);
    await waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas again',
      timeoutMs: 90_000,
      intervalMs: 500,
    });
    const rows = await lostWrites(uri, []);
    assert.deepEqual(rows, []);
  });

  it('a primary whose agent is paused (SIGSTOP) past its lease is fenced, then replaced, with no acknowledged write lost', async () => {
    const before = await detail();
    const primary = before.primary;
    assert.ok(primary);
    const pid = Number((await readFile(join(cluster.home, 'run', `agent-${primary.node}.pid`), 'utf8')).trim());
    const writer = new Writer(uri);
    writer.start();
    try {
      await waitFor(() => writer.acked.length >= 50, {
        description: '50 acknowledged writes',
        timeoutMs: 90_000,
      }).catch(async (error: unknown) => {
        // Say why in the test log: the writer's last errors and what the platform shows.
        console.log(`# writer errors: ${JSON.stringify(writer.errors.slice(-3))}`);
        console.log(`# instance: ${JSON.stringify(await detail())}`);
        console.log(`# events: ${(await cluster.sf('events', '--limit', '30')).stdout}`);
        throw error;
      });
      // The classic paused lock holder: the agent cannot renew its lease nor fence itself,
      // and its Postgres keeps running. Only STONITH makes promotion safe here.
      process.kill(pid, 'SIGSTOP');
      const pausedAt = Date.now();
      await waitFor(async () => ((await detail()).primary?.epoch ?? 0) > primary.epoch, {
        description: 'a new primary',
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      await waitFor(() => writer.firstAckAfter(Date.now()), {
        description: 'writes on the new primary',
        timeoutMs: 90_000,
      });
      console.log(`# paused agent: new primary after ${((Date.now() - pausedAt) / 1000).toFixed(2)} s`);
    } finally {
      await writer.stop();
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // fence_sf_sim killed it, as it should.
      }
    }
    assert.deepEqual(await lostWrites(uri, writer.acked), []);
    const old = await docker.listContainers({
      filters: JSON.stringify({ label: [`sf.cluster=${cluster.clusterId}`, `sf.node=${primary.node}`] }),
    });
    assert.deepEqual(old, [], 'the old primary was powered off by the fence device, not left running');
    assert.equal((await cluster.sf('unfence', primary.node)).code, 0);
    assert.equal((await cluster.sf('up')).code, 0);
    await waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas again',
      timeoutMs: 90_000,
      intervalMs: 500,
    });
  });

  it('blocks failover, loudly, when fencing fails and the policy requires it', async () => {
    const current = await detail();
    const primary = current.primary;
    assert.ok(primary);
    const failing = join(cluster.home, 'failing-devices.json');
    await writeFile(
      failing,
      JSON.stringify({
        levels: [{ devices: [{ agent: 'fence_dummy', options: { type: 'fail' }, timeoutSeconds: 5, retries: 0 }] }],
      }),
    );
    const set = await cluster.sf('fence-devices', primary.node, '--set', failing);
    assert.equal(set.code, 0, set.stdout + set.stderr);
    await killNode(cluster, primary.node);
    const blocked = await waitFor(
      async () => {
        const d = await detail();
        return /failover blocked: fencing of node/.test(d.message) ? d : undefined;
      },
      { description: 'the instance to report the blocked failover', timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(blocked.primary?.epoch, primary.epoch, 'no promotion without a confirmed fence');
    assert.match(blocked.message, new RegExp(`fencing of node ${primary.node} failed`));
  });
});
