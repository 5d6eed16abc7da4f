import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  allocationCodec,
  assignmentCodec,
  instanceCodec,
  json,
  placementCodec,
  primaryCodec,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  routeCodec,
  sealedEnvelopeCodec,
  tombstoneCodec,
  tombstoneTtlSeconds,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RunningScheduler, startScheduler } from '../src/index.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

describe('controller: provision to a routed primary, then teardown', () => {
  let f: TestEtcd;
  let scheduler: RunningScheduler;
  before(async () => {
    f = await startTestEtcd();
    scheduler = await startScheduler(schedulerConfig(f, { intervalMs: 100, name: 'ctl' }));
  });
  after(async () => {
    await scheduler.stop();
    await f.stop();
  });

  it('elects the running replica, publishes its route at the primary epoch, and marks the instance ready', async () => {
    const leaseId = await registerNode(f, 'node-a', { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 });
    await f.client
      .put(f.keys.instance('pg1'))
      .value(json(instanceRecord('pg1', 1, { cpuMillis: 100, memoryMb: 100, diskMb: 100 }, 40123)))
      .exec();
    // Postgres replicates natively, so the controller first names the bootstrap primary.
    const assignment = await waitFor(
      async () => {
        const a = await readRecord(f.client, assignmentCodec, f.keys.assignment('node-a', 'pg1', 0));
        return a?.value.role === 'primary' ? a : undefined;
      },
      { description: 'assignment on node-a with the bootstrap primary role' },
    );
    assert.equal(assignment.value.desired, 'running');
    assert.equal(assignment.value.epoch, 0);
    // What the agent does once the container answers as primary:
    const status: ReplicaStatus = {
      instanceId: 'pg1',
      ordinal: 0,
      node: 'node-a',
      state: 'running',
      host: '127.0.0.9',
      port: 5555,
      message: 'ready',
      updatedAt: new Date().toISOString(),
      role: 'primary',
      epoch: 0,
      peer: { host: '172.17.0.9', port: 5432 },
    };
    await f.client.put(f.keys.status('pg1', 0)).value(json(status)).lease(leaseId).exec();
    const ready = await waitFor(
      async () => {
        const instance = await readRecord(f.client, instanceCodec, f.keys.instance('pg1'));
        return instance?.value.phase === 'ready' ? instance.value : undefined;
      },
      { description: 'pg1 ready' },
    );
    assert.equal(ready.operation.state, 'succeeded');
    const primary = await readRecord(f.client, primaryCodec, f.keys.primary('pg1'));
    const route = await readRecord(f.client, routeCodec, f.keys.route('pg1'));
    assert.ok(primary && route);
    assert.deepEqual(route.value.target, { host: '127.0.0.9', port: 5555 });
    assert.equal(route.value.port, 40123);
    assert.equal(route.value.epoch, Number(primary.modRevision), 'the route carries the primary key revision as epoch');
    assert.deepEqual(route.value.limits, { maxSessions: 50 }, "the plan's connections.router reaches the router");
  });

  it('on deprovision, asks the agent to remove the replica, then frees capacity and deletes every record', async () => {
    const instance = await readRecord(f.client, instanceCodec, f.keys.instance('pg1'));
    assert.ok(instance);
    await f.client
      .put(f.keys.instance('pg1'))
      .value(
        json({
          ...instance.value,
          phase: 'deprovisioning',
          operation: { ...instance.value.operation, type: 'deprovision', state: 'in progress' },
        }),
      )
      .exec();
    const key = f.keys.assignment('node-a', 'pg1', 0);
    await waitFor(async () => (await readRecord(f.client, assignmentCodec, key))?.value.desired === 'removed', {
      description: 'assignment marked removed',
    });
    assert.equal(
      await readRecord(f.client, routeCodec, f.keys.route('pg1')),
      undefined,
      'route withdrawn before removal',
    );
    assert.equal(
      await readRecord(f.client, instanceCodec, f.keys.instance('pg1')).then((i) => i !== undefined),
      true,
      'instance kept until the agent confirms',
    );
    // The agent confirms removal by deleting its status and the assignment.
    await f.client.delete().key(f.keys.status('pg1', 0)).exec();
    await f.client.delete().key(key).exec();
    await waitFor(async () => (await readRecord(f.client, instanceCodec, f.keys.instance('pg1'))) === undefined, {
      description: 'pg1 deleted',
    });
    const allocation = await readRecord(f.client, allocationCodec, f.keys.allocation('node-a'));
    assert.deepEqual(allocation?.value.replicas, {});
    assert.equal((await readPrefix(f.client, placementCodec, f.keys.placements())).items.size, 0);
    assert.equal(await readRecord(f.client, sealedEnvelopeCodec, f.keys.secret('pg1')), undefined);
    assert.equal(await readRecord(f.client, primaryCodec, f.keys.primary('pg1')), undefined);
    // In the same transaction: the record that pg1 existed (OSB last_operation: 410, not 404), under a lease.
    const tombstone = await readRecord(f.client, tombstoneCodec, f.keys.tombstone('pg1'));
    assert.equal(tombstone?.value.operationId, instance.value.operation.id);
    const lease = (await f.client.get(f.keys.tombstone('pg1')).exec()).kvs[0]?.lease;
    assert.ok(lease && lease !== '0');
    const ttl = await f.client.leaseClient.leaseTimeToLive({ ID: lease });
    assert.equal(Number(ttl.grantedTTL), tombstoneTtlSeconds);
  });

  it('marks a provision failed when its replica fails, with the reason', async () => {
    const leaseId = await registerNode(f, 'node-b', { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 });
    await f.client
      .put(f.keys.instance('bad1'))
      .value(json({ ...instanceRecord('bad1', 1, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }, 40124) }))
      .exec();
    const placement = await waitFor(() => readRecord(f.client, placementCodec, f.keys.placement('bad1', 0)), {
      description: 'bad1 placed',
    });
    const status: ReplicaStatus = {
      instanceId: 'bad1',
      ordinal: 0,
      node: placement.value.node,
      state: 'failed',
      message: 'image X not found',
      updatedAt: new Date().toISOString(),
    };
    await f.client.put(f.keys.status('bad1', 0)).value(json(status)).lease(leaseId).exec();
    const failed = await waitFor(
      async () => {
        const instance = await readRecord(f.client, instanceCodec, f.keys.instance('bad1'));
        return instance?.value.phase === 'failed' ? instance.value : undefined;
      },
      { description: 'bad1 failed' },
    );
    assert.equal(failed.operation.state, 'failed');
    assert.match(failed.operation.description, /image X not found/);
  });
});
