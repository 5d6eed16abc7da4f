import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  type AssignmentRecord,
  json,
  type NodeAllocation,
  type PlacementRecord,
  readJson,
  readPrefix,
  waitFor,
} from '@service-foundry/core';
import { checkPlacements, reserve, startScheduler } from '../src/index.js';
import { type EtcdFixture, etcdFixture, instanceRecord, registerNode } from './helpers.js';

const slot = { cpuMillis: 200, memoryMb: 100, diskMb: 100 };
const nodeSize = { cpuMillis: 1000, memoryMb: 10_000, diskMb: 10_000 };

describe('scheduler against a real etcd', () => {
  let f: EtcdFixture;
  before(async () => {
    f = await etcdFixture();
  });
  beforeEach(() => f.isolate());
  after(async () => {
    await f.close();
  });

  it('two schedulers racing on the same instances never over-commit a node or place a replica twice', async () => {
    const nodes = 6;
    for (let i = 0; i < nodes; i++) await registerNode(f, `node-${i}`, nodeSize);
    // 40 instances x 2 replicas x 200m cpu asks for 16 cpus; the nodes have 6: exactly 30 slots.
    for (let i = 0; i < 40; i++) {
      await f.client
        .put(f.keys.instance(`db-${i}`))
        .value(json(instanceRecord(`db-${i}`, 2, slot)))
        .exec();
    }
    const config = { etcdEndpoints: [f.etcd.endpoint], keyspaceRoot: f.keys.root, intervalMs: 100, controller: false };
    const schedulers = await Promise.all([
      startScheduler({ ...config, name: 'sched-a' }),
      startScheduler({ ...config, name: 'sched-b' }),
    ]);
    try {
      const placed = await waitFor(
        async () => {
          const { items } = await readPrefix<PlacementRecord>(f.client, f.keys.placements());
          return items.size === 30 ? [...items.values()].map((i) => i.value) : undefined;
        },
        { description: '30 placements', timeoutMs: 20_000 },
      );
      assert.deepEqual(await checkPlacements(f.client, f.keys), []);
      const perReplica = new Set(placed.map((p) => `${p.instanceId}/${p.ordinal}`));
      assert.equal(perReplica.size, 30, 'no replica placed twice');
      for (const p of placed) {
        const assignment = await readJson<AssignmentRecord>(
          f.client,
          f.keys.assignment(p.node, p.instanceId, p.ordinal),
        );
        assert.equal(assignment?.value.desired, 'running', `assignment for ${p.instanceId}/${p.ordinal} on ${p.node}`);
      }
    } finally {
      await Promise.all(schedulers.map((s) => s.stop()));
    }
    assert.deepEqual(await checkPlacements(f.client, f.keys), []);
  });

  it('a reservation decided on a stale allocation does not commit', async () => {
    await registerNode(f, 'stale-node', nodeSize);
    const rec = instanceRecord('stale-db', 2, slot);
    await f.client.put(f.keys.instance('stale-db')).value(json(rec)).exec();
    const instance = await readJson(f.client, f.keys.instance('stale-db'));
    assert.ok(instance);
    const base = {
      resources: slot,
      serviceName: 'postgres',
      planName: 'small',
      instanceRevision: instance.modRevision,
      node: 'stale-node',
      scheduler: 'test',
    };
    const first = await reserve(f.client, f.keys, {
      ...base,
      instanceId: 'stale-db',
      ordinal: 0,
      allocation: undefined,
    });
    assert.equal(first.committed, true);
    // A second scheduler that read the node before the first commit still believes it empty.
    const second = await reserve(f.client, f.keys, {
      ...base,
      instanceId: 'stale-db',
      ordinal: 1,
      allocation: undefined,
    });
    assert.equal(second.committed, false);
    const again = await reserve(f.client, f.keys, {
      ...base,
      instanceId: 'stale-db',
      ordinal: 0,
      allocation: first.allocation,
    });
    assert.equal(again.committed, false, 'the same replica cannot be placed twice');
    const allocation = await readJson<NodeAllocation>(f.client, f.keys.allocation('stale-node'));
    assert.deepEqual(Object.keys(allocation?.value.replicas ?? {}), ['stale-db/0']);
  });

  it('a replica waits when no node fits, and is placed once one does', async () => {
    const rec = instanceRecord('big-db', 1, { cpuMillis: 5000, memoryMb: 1, diskMb: 1 });
    await f.client.put(f.keys.instance('big-db')).value(json(rec)).exec();
    const running = await startScheduler({
      etcdEndpoints: [f.etcd.endpoint],
      keyspaceRoot: f.keys.root,
      intervalMs: 100,
      controller: false,
      name: 'sched-c',
    });
    try {
      await waitFor(
        async () => {
          const { items } = await readPrefix<{ kind: string; message: string; instanceId?: string }>(
            f.client,
            f.keys.events(),
          );
          return [...items.values()].some((e) => e.value.kind === 'replica-pending' && e.value.instanceId === 'big-db');
        },
        { description: 'a replica-pending event for big-db', timeoutMs: 10_000 },
      );
      assert.equal(await readJson(f.client, f.keys.placement('big-db', 0)), undefined);
      await registerNode(f, 'huge-node', { cpuMillis: 8000, memoryMb: 1000, diskMb: 1000 });
      const placement = await waitFor(() => readJson<PlacementRecord>(f.client, f.keys.placement('big-db', 0)), {
        description: 'big-db placed on the new node',
        timeoutMs: 10_000,
      });
      assert.equal(placement.value.node, 'huge-node');
    } finally {
      await running.stop();
    }
  });
});
