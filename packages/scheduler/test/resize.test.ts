import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  type AssignmentRecord,
  allocationCodec,
  assignmentCodec,
  json,
  type NodeAllocation,
  type Resources,
  readRecord,
  type Versioned,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { resizeReplica, trimLedgers } from '../src/controller/resize.js';
import { registerNode } from './helpers.js';

/** Resizing in place (controller/resize.ts), one test per row of its table, against a real etcd. */

const capacity: Resources = { cpuMillis: 2000, memoryMb: 2048, diskMb: 4096 };
const small: Resources = { cpuMillis: 500, memoryMb: 512, diskMb: 1024 };
const medium: Resources = { cpuMillis: 1000, memoryMb: 1024, diskMb: 2048 };

describe('resizing a replica in place against a real etcd', () => {
  let f: TestEtcd;
  before(async () => {
    f = await startTestEtcd();
  });
  beforeEach(() => {
    f.isolate();
  });
  after(async () => {
    await f.stop();
  });

  /** Replica db/0 on n1 at `resources`, with `others` taken on the node by another instance. */
  async function placed(resources: Resources, others: Resources): Promise<Versioned<AssignmentRecord>> {
    await registerNode(f, 'n1', capacity);
    const ledger: NodeAllocation = {
      node: 'n1',
      replicas: {
        'db/0': { instanceId: 'db', ordinal: 0, resources },
        'other/0': { instanceId: 'other', ordinal: 0, resources: others },
      },
    };
    const assignment: AssignmentRecord = {
      instanceId: 'db',
      ordinal: 0,
      serviceName: 'postgres',
      planName: 'small',
      resources,
      desired: 'running',
    };
    await f.client.put(f.keys.allocation('n1')).value(json(ledger)).exec();
    await f.client
      .put(f.keys.assignment('n1', 'db', 0))
      .value(json(assignment))
      .exec();
    return (await readRecord(
      f.client,
      assignmentCodec,
      f.keys.assignment('n1', 'db', 0),
    )) as Versioned<AssignmentRecord>;
  }
  const ledgerEntry = async (key: string) =>
    (await readRecord(f.client, allocationCodec, f.keys.allocation('n1')))?.value.replicas[key]?.resources;
  const assigned = async () =>
    (await readRecord(f.client, assignmentCodec, f.keys.assignment('n1', 'db', 0)))?.value.resources;

  it('resize (growing): the ledger holds the new size and the assignment asks it, in one transaction', async () => {
    const assignment = await placed(small, small);
    assert.deepEqual(await resizeReplica(f.client, f.keys, 'n1', assignment, medium), { ok: true });
    assert.deepEqual(await ledgerEntry('db/0'), medium);
    assert.deepEqual(await assigned(), medium);
    assert.deepEqual(await ledgerEntry('other/0'), small, 'the other replica is untouched');
  });

  it('resize (shrinking): the ledger keeps the larger size until the trim, the assignment asks the smaller', async () => {
    const assignment = await placed(medium, small);
    assert.deepEqual(await resizeReplica(f.client, f.keys, 'n1', assignment, small), { ok: true });
    assert.deepEqual(await ledgerEntry('db/0'), medium, 'the container may still run at the old size');
    assert.deepEqual(await assigned(), small);
    assert.equal(await trimLedgers(f.client, f.keys, 'db', [{ node: 'n1', ordinal: 0 }], small), false, 'one write');
    assert.deepEqual(await ledgerEntry('db/0'), small);
    assert.equal(await trimLedgers(f.client, f.keys, 'db', [{ node: 'n1', ordinal: 0 }], small), true, 'then settled');
  });

  it('refuses a size the node has no room for, naming what is short, and writes nothing', async () => {
    const assignment = await placed(small, { cpuMillis: 1200, memoryMb: 512, diskMb: 1024 });
    const outcome = await resizeReplica(f.client, f.keys, 'n1', assignment, medium);
    assert.deepEqual(outcome, {
      ok: false,
      reason: 'node n1 has no room to resize replica 0: 1000 millicores CPU asked, 800 free',
    });
    assert.deepEqual(await ledgerEntry('db/0'), small);
    assert.deepEqual(await assigned(), small);
  });

  it('a ledger or assignment changed since they were read: nothing written (the next round decides again)', async () => {
    const assignment = await placed(small, small);
    await f.client
      .put(f.keys.assignment('n1', 'db', 0))
      .value(json({ ...assignment.value, image: 'x:2' }))
      .exec();
    const outcome = await resizeReplica(f.client, f.keys, 'n1', assignment, medium);
    assert.equal(outcome.ok, false);
    assert.deepEqual(await ledgerEntry('db/0'), small);
  });

  it('a node without a registration (down): waits for it', async () => {
    const assignment = await placed(small, small);
    await f.client.delete().key(f.keys.node('n1')).exec();
    const outcome = await resizeReplica(f.client, f.keys, 'n1', assignment, medium);
    assert.deepEqual(outcome, { ok: false, reason: 'node n1 is not registered (down?); replica 0 waits for it' });
  });
});
