import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  allocationCodec,
  assignmentCodec,
  type InstanceRecord,
  instanceCodec,
  json,
  placementCodec,
  readRecord,
  schedulingStatusCodec,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { defaultNoRoomGraceMs } from '../src/controller/no-room.js';
import { type RunningScheduler, startScheduler } from '../src/index.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

/** What users were promised: a provision that cannot fit fails well within this. */
const failFastMs = 30_000;

describe('controller: a provision no node has room for fails fast and gives back what it took', () => {
  let f: TestEtcd;
  let scheduler: RunningScheduler | undefined;
  before(async () => {
    f = await startTestEtcd();
  });
  beforeEach(async () => {
    f.isolate();
    scheduler = await startScheduler(schedulerConfig(f, { name: 'no-room' }));
  });
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
  });
  after(async () => {
    await f.stop();
  });

  const readInstance = async (id: string) => (await readRecord(f.client, instanceCodec, f.keys.instance(id)))?.value;
  const failedInstance = (id: string) =>
    waitFor(
      async () => {
        const instance = await readInstance(id);
        return instance?.phase === 'failed' ? instance : undefined;
      },
      { description: `${id} failed`, timeoutMs: failFastMs + 5_000, intervalMs: 100 },
    );

  it('fails within 30 s, saying what a replica needs and what the most free node has', async (t) => {
    await registerNode(f, 'node-a', { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 });
    await registerNode(f, 'node-b', { cpuMillis: 2000, memoryMb: 600, diskMb: 5000 });
    const started = Date.now();
    await f.client
      .put(f.keys.instance('big'))
      .value(json(instanceRecord('big', 1, { cpuMillis: 500, memoryMb: 1024, diskMb: 100 })))
      .exec();
    const status = await waitFor(
      async () => (await readRecord(f.client, schedulingStatusCodec, f.keys.schedulingStatus('big')))?.value,
      { description: 'the scheduler explains why big waits' },
    );
    assert.deepEqual(
      status.pending.map((p) => p.noRoom),
      [true],
    );
    const failed = await failedInstance('big');
    const tookMs = Date.now() - started;
    t.diagnostic(`provision failed ${tookMs} ms after it was written`);
    assert.ok(tookMs < failFastMs, `failed after ${tookMs} ms`);
    assert.ok(tookMs >= defaultNoRoomGraceMs, 'not before the grace for capacity on its way back');
    assert.equal(failed.operation.state, 'failed');
    assert.equal(
      failed.operation.description,
      'no node has room for "big": each replica needs 500m cpu, 1 GiB memory, 100 MB disk; ' +
        'the most free node, node-a, has 1 cpu, 1000 MB memory, 1000 MB disk free',
    );
    assert.equal(failed.message, failed.operation.description);
  });

  it('releases the replicas a failed provision placed: assignment removed, then capacity returned', async () => {
    // Room for one replica on node-c and none anywhere else: replica 0 is placed, replica 1 cannot be.
    await registerNode(f, 'node-c', { cpuMillis: 300, memoryMb: 300, diskMb: 300 });
    await registerNode(f, 'node-d', { cpuMillis: 100, memoryMb: 100, diskMb: 100 });
    await f.client
      .put(f.keys.instance('pair'))
      .value(json(instanceRecord('pair', 2, { cpuMillis: 300, memoryMb: 300, diskMb: 300 })))
      .exec();
    const assignmentKey = f.keys.assignment('node-c', 'pair', 0);
    await waitFor(() => readRecord(f.client, assignmentCodec, assignmentKey), {
      description: 'replica 0 assigned to node-c',
    });
    const failed = await failedInstance('pair');
    assert.match(failed.operation.description, /^no node has room for "pair": each replica needs 300m cpu/);
    await waitFor(
      async () => (await readRecord(f.client, assignmentCodec, assignmentKey))?.value.desired === 'removed',
      {
        description: 'the failed provision asks the agent to remove replica 0',
      },
    );
    // What the agent does once the container and volume are gone.
    await f.client.delete().key(assignmentKey).exec();
    await waitFor(
      async () => {
        const ledger = await readRecord(f.client, allocationCodec, f.keys.allocation('node-c'));
        const placement = await readRecord(f.client, placementCodec, f.keys.placement('pair', 0));
        return ledger && Object.keys(ledger.value.replicas).length === 0 && !placement;
      },
      { description: 'node-c gets its capacity back' },
    );
    assert.equal((await readInstance('pair'))?.phase, 'failed', 'the record stays until the platform deprovisions');
  });

  it('never fails an instance that was ready before: its pending replicas wait for room', async () => {
    await registerNode(f, 'node-e', { cpuMillis: 100, memoryMb: 100, diskMb: 100 });
    const size = { cpuMillis: 500, memoryMb: 500, diskMb: 500 };
    const ready: InstanceRecord = {
      ...instanceRecord('a-ready', 1, size),
      phase: 'ready',
      operation: { ...instanceRecord('a-ready', 1, size).operation, state: 'succeeded' },
    };
    await f.client.put(f.keys.instance('a-ready')).value(json(ready)).exec();
    await waitFor(
      async () => (await readRecord(f.client, schedulingStatusCodec, f.keys.schedulingStatus('a-ready')))?.value,
      { description: 'the ready instance waits for room too' },
    );
    // A provision reported no room no earlier than the ready instance: once it has failed,
    // the ready instance's report is at least as old.
    await f.client
      .put(f.keys.instance('b-new'))
      .value(json(instanceRecord('b-new', 1, size, 40001)))
      .exec();
    await failedInstance('b-new');
    const still = await readInstance('a-ready');
    assert.equal(still?.phase, 'ready');
    assert.equal(still?.operation.state, 'succeeded');
  });
});
