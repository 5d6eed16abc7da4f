import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  allocationCodec,
  assignmentCodec,
  eventCodec,
  type InstanceRecord,
  instanceCodec,
  json,
  placementCodec,
  readPrefix,
  readRecord,
  type Versioned,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { checkPlacements, commitPlacements, lockNodes, type ReplicaToCommit } from '../src/index.js';
import { instanceRecord, registerNode } from './helpers.js';

const size = { cpuMillis: 4000, memoryMb: 4096, diskMb: 4096 };
const small = { cpuMillis: 100, memoryMb: 100, diskMb: 100 };

describe('placement transactions against a real etcd', () => {
  let f: TestEtcd;
  let lease: string;
  let eventLease: string;
  before(async () => {
    f = await startTestEtcd();
  });
  beforeEach(async () => {
    f.isolate();
    lease = await f.client.lease(30, { autoKeepAlive: false }).grant();
    eventLease = await f.client.lease(60, { autoKeepAlive: false }).grant();
  });
  after(async () => {
    await f.stop();
  });

  async function createInstance(id: string, replicas: number): Promise<Versioned<InstanceRecord>> {
    await f.client
      .put(f.keys.instance(id))
      .value(json(instanceRecord(id, replicas, small)))
      .exec();
    const read = await readRecord(f.client, instanceCodec, f.keys.instance(id));
    assert.ok(read);
    return read;
  }

  /** A replica as a scheduler would commit it, with the placement revisions it saw. */
  function toCommit(
    instance: Versioned<InstanceRecord>,
    ordinal: number,
    seen: Record<number, string> = {},
  ): ReplicaToCommit {
    const revisions = new Map<string, string>();
    for (let o = 0; o < instance.value.replicas; o++) {
      revisions.set(f.keys.placement(instance.value.id, o), seen[o] ?? '0');
    }
    return {
      instanceId: instance.value.id,
      ordinal,
      resources: instance.value.resources,
      serviceName: instance.value.serviceName,
      planName: instance.value.planName,
      instanceRevision: instance.modRevision,
      placementRevisions: revisions,
      clearSchedulingStatus: false,
    };
  }

  const context = () => ({ scheduler: 'test', eventLeaseId: eventLease });

  it('one request locks every free node and returns its keys; a node locked elsewhere is busy', async () => {
    await registerNode(f, 'n1', size);
    await registerNode(f, 'n2', size);
    await f.client
      .put(f.keys.allocation('n1'))
      .value(json({ node: 'n1', replicas: {} }))
      .exec();
    const other = await f.client.lease(30, { autoKeepAlive: false }).grant();
    await f.client.put(f.keys.nodeLock('n2')).value('someone-else').lease(other).exec();
    const result = await lockNodes(
      f.client,
      f.keys,
      [
        { node: 'n1', moves: [] },
        { node: 'n2', moves: [] },
      ],
      lease,
      'me',
    );
    assert.deepEqual(result.busy, ['n2']);
    assert.equal(result.locked.length, 1);
    const [n1] = result.locked;
    assert.equal(n1?.record?.value.name, 'n1');
    assert.deepEqual(n1?.allocation?.value, { node: 'n1', replicas: {} });
    assert.equal(n1?.control, undefined);
    const lock = (await f.client.get(f.keys.nodeLock('n1')).exec()).kvs[0];
    assert.equal(lock?.create_revision, result.revision, "the lock's create revision is the fencing token");
    assert.equal(lock?.lease, lease);
  });

  it('commits each node on its own: a conflict on one node writes nothing there and leaves the others placed', async () => {
    await registerNode(f, 'n1', size);
    await registerNode(f, 'n2', size);
    const a = await createInstance('a', 1);
    const b = await createInstance('b', 1);
    const locks = await lockNodes(
      f.client,
      f.keys,
      [
        { node: 'n1', moves: [] },
        { node: 'n2', moves: [] },
      ],
      lease,
      'me',
    );
    // Someone changes n2's ledger behind the lock (as a release by the controller would).
    await f.client
      .put(f.keys.allocation('n2'))
      .value(json({ node: 'n2', replicas: {} }))
      .exec();
    const [l1, l2] = locks.locked;
    assert.ok(l1 && l2);
    const result = await commitPlacements(
      f.client,
      f.keys,
      [
        { locked: l1, replicas: [toCommit(a, 0)] },
        { locked: l2, replicas: [toCommit(b, 0)] },
      ],
      locks.revision,
      context(),
    );
    assert.deepEqual(
      result.committed.map((c) => c.node),
      ['n1'],
    );
    assert.deepEqual(result.conflicted, ['n2']);
    assert.equal((await readRecord(f.client, placementCodec, f.keys.placement('a', 0)))?.value.node, 'n1');
    assert.equal(
      (await readRecord(f.client, assignmentCodec, f.keys.assignment('n1', 'a', 0)))?.value.desired,
      'running',
    );
    assert.equal(await readRecord(f.client, placementCodec, f.keys.placement('b', 0)), undefined);
    assert.equal(await readRecord(f.client, assignmentCodec, f.keys.assignment('n2', 'b', 0)), undefined);
    assert.deepEqual((await readRecord(f.client, allocationCodec, f.keys.allocation('n2')))?.value.replicas, {});
    // Lock values are the owner's name, not JSON records: only their absence matters here.
    assert.equal(await f.client.get(f.keys.nodeLock('n1')).string(), null, 'released by the commit');
    assert.equal(await f.client.get(f.keys.nodeLock('n2')).string(), null, 'released by the failure branch');
    const events = await readPrefix(f.client, eventCodec, f.keys.events());
    assert.deepEqual(
      [...events.items.values()].map((e) => [e.value.kind, e.value.instanceId]),
      [['replica-placed', 'a']],
    );
    assert.deepEqual(await checkPlacements(f.client, f.keys), []);
  });

  it('a holder whose lock expired and was taken by another writes nothing (the paused lock holder)', async () => {
    await registerNode(f, 'n1', size);
    const a = await createInstance('a', 1);
    const locks = await lockNodes(f.client, f.keys, [{ node: 'n1', moves: [] }], lease, 'paused');
    // The paused holder's lease runs out; another scheduler locks the node.
    await f.client.leaseClient.leaseRevoke({ ID: lease });
    const other = await f.client.lease(30, { autoKeepAlive: false }).grant();
    const theirs = await lockNodes(f.client, f.keys, [{ node: 'n1', moves: [] }], other, 'other');
    assert.equal(theirs.locked.length, 1);
    const [locked] = locks.locked;
    assert.ok(locked);
    const result = await commitPlacements(
      f.client,
      f.keys,
      [{ locked, replicas: [toCommit(a, 0)] }],
      locks.revision,
      context(),
    );
    assert.deepEqual(result.conflicted, ['n1']);
    assert.equal(await readRecord(f.client, placementCodec, f.keys.placement('a', 0)), undefined);
    assert.equal(await readRecord(f.client, allocationCodec, f.keys.allocation('n1')), undefined);
    const lock = (await f.client.get(f.keys.nodeLock('n1')).exec()).kvs[0];
    assert.equal(lock?.lease, other, "the failure branch does not release someone else's lock");
  });

  it('a stale view of the siblings cannot put two replicas of an instance in one zone', async () => {
    await registerNode(f, 'a1', size, 30, { zone: 'a' });
    await registerNode(f, 'a2', size, 30, { zone: 'a' });
    const x = await createInstance('x', 2);
    // Two schedulers decide at the same time, both seeing x with no placement.
    const first = await lockNodes(f.client, f.keys, [{ node: 'a1', moves: [] }], lease, 's1');
    const second = await lockNodes(f.client, f.keys, [{ node: 'a2', moves: [] }], lease, 's2');
    const [l1] = first.locked;
    const [l2] = second.locked;
    assert.ok(l1 && l2);
    const one = await commitPlacements(
      f.client,
      f.keys,
      [{ locked: l1, replicas: [toCommit(x, 0)] }],
      first.revision,
      context(),
    );
    const two = await commitPlacements(
      f.client,
      f.keys,
      [{ locked: l2, replicas: [toCommit(x, 1)] }],
      second.revision,
      context(),
    );
    assert.equal(one.committed.length, 1);
    assert.deepEqual(two.conflicted, ['a2'], 'replica 0 was placed since the decision: the comparison fails');
    const nodes = new Map([
      ['a1', { capacity: size, labels: { zone: 'a' } }],
      ['a2', { capacity: size, labels: { zone: 'a' } }],
    ]);
    assert.deepEqual(await checkPlacements(f.client, f.keys, { nodes }), []);
  });

  it('a replica already placed cannot be placed again, even by a decision that saw its placement', async () => {
    await registerNode(f, 'n1', size);
    await registerNode(f, 'n2', size);
    const x = await createInstance('x', 1);
    const first = await lockNodes(f.client, f.keys, [{ node: 'n1', moves: [] }], lease, 'one');
    const [l1] = first.locked;
    assert.ok(l1);
    await commitPlacements(f.client, f.keys, [{ locked: l1, replicas: [toCommit(x, 0)] }], first.revision, context());
    const placed = await readRecord(f.client, placementCodec, f.keys.placement('x', 0));
    assert.ok(placed);
    // A scheduler whose work list lags believes x/0 pending, yet its watched copy already
    // holds the placement at its current revision: the comparisons alone must refuse.
    const second = await lockNodes(f.client, f.keys, [{ node: 'n2', moves: [] }], lease, 'two');
    const [l2] = second.locked;
    assert.ok(l2);
    const stale = toCommit(x, 0, { 0: placed.modRevision });
    const result = await commitPlacements(
      f.client,
      f.keys,
      [{ locked: l2, replicas: [stale] }],
      second.revision,
      context(),
    );
    assert.deepEqual(result.conflicted, ['n2']);
    assert.equal((await readRecord(f.client, placementCodec, f.keys.placement('x', 0)))?.value.node, 'n1');
    assert.deepEqual(await checkPlacements(f.client, f.keys, { expectAllPlaced: true }), []);
  });

  it('a node cordoned between lock and commit takes nothing', async () => {
    await registerNode(f, 'n1', size);
    const a = await createInstance('a', 1);
    const locks = await lockNodes(f.client, f.keys, [{ node: 'n1', moves: [] }], lease, 'me');
    await f.client
      .put(f.keys.nodeControl('n1'))
      .value(json({ node: 'n1', cordoned: true, draining: false, reason: 'maintenance', updatedAt: '', by: 'op' }))
      .exec();
    const [locked] = locks.locked;
    assert.ok(locked);
    const result = await commitPlacements(
      f.client,
      f.keys,
      [{ locked, replicas: [toCommit(a, 0)] }],
      locks.revision,
      context(),
    );
    assert.deepEqual(result.conflicted, ['n1']);
    assert.equal(await readRecord(f.client, placementCodec, f.keys.placement('a', 0)), undefined);
  });

  it('moves a replica off a gone, fenced node: both ledgers, the placement history and the old assignment in one step', async () => {
    const oldLease = await registerNode(f, 'old', size);
    await registerNode(f, 'new', size);
    const x = await createInstance('x', 1);
    const placedLocks = await lockNodes(f.client, f.keys, [{ node: 'old', moves: [] }], lease, 'me');
    const [onOld] = placedLocks.locked;
    assert.ok(onOld);
    await commitPlacements(
      f.client,
      f.keys,
      [{ locked: onOld, replicas: [toCommit(x, 0)] }],
      placedLocks.revision,
      context(),
    );
    await f.client.leaseClient.leaseRevoke({ ID: oldLease });
    await f.client
      .put(f.keys.fence('old'))
      .value(json({ node: 'old', state: 'fenced', reason: 'lease expired', by: 'controller', at: '' }))
      .exec();
    const placement = await readRecord(f.client, placementCodec, f.keys.placement('x', 0));
    assert.ok(placement);
    const locks = await lockNodes(
      f.client,
      f.keys,
      [{ node: 'new', moves: [{ instanceId: 'x', ordinal: 0, oldNode: 'old' }] }],
      lease,
      'me',
    );
    const [locked] = locks.locked;
    const reads = locked?.moves.get('x/0');
    assert.ok(locked && reads);
    assert.equal(reads.oldNodeRecord, undefined);
    assert.equal(reads.oldFence?.value.state, 'fenced');
    const move = { ...toCommit(x, 0, { 0: placement.modRevision }), move: { from: placement.value, reads } };
    const result = await commitPlacements(f.client, f.keys, [{ locked, replicas: [move] }], locks.revision, context());
    assert.equal(result.committed.length, 1);
    const moved = await readRecord(f.client, placementCodec, f.keys.placement('x', 0));
    assert.equal(moved?.value.node, 'new');
    assert.deepEqual(moved?.value.previousNodes, ['old']);
    assert.deepEqual((await readRecord(f.client, allocationCodec, f.keys.allocation('old')))?.value.replicas, {});
    assert.deepEqual(
      Object.keys((await readRecord(f.client, allocationCodec, f.keys.allocation('new')))?.value.replicas ?? {}),
      ['x/0'],
    );
    assert.equal(
      (await readRecord(f.client, assignmentCodec, f.keys.assignment('old', 'x', 0)))?.value.desired,
      'removed',
    );
    assert.equal(
      (await readRecord(f.client, assignmentCodec, f.keys.assignment('new', 'x', 0)))?.value.desired,
      'running',
    );
    const nodes = new Map([
      ['old', { capacity: size, labels: {} }],
      ['new', { capacity: size, labels: {} }],
    ]);
    assert.deepEqual(await checkPlacements(f.client, f.keys, { nodes, expectAllPlaced: true }), []);
  });

  it('does not move a replica once its node is unfenced after the lock was taken', async () => {
    const oldLease = await registerNode(f, 'old', size);
    await registerNode(f, 'new', size);
    const x = await createInstance('x', 1);
    const first = await lockNodes(f.client, f.keys, [{ node: 'old', moves: [] }], lease, 'me');
    const [onOld] = first.locked;
    assert.ok(onOld);
    await commitPlacements(
      f.client,
      f.keys,
      [{ locked: onOld, replicas: [toCommit(x, 0)] }],
      first.revision,
      context(),
    );
    await f.client.leaseClient.leaseRevoke({ ID: oldLease });
    const fence = (state: string) =>
      f.client
        .put(f.keys.fence('old'))
        .value(json({ node: 'old', state, reason: '', by: 'controller', at: '' }))
        .exec();
    await fence('fenced');
    const placement = await readRecord(f.client, placementCodec, f.keys.placement('x', 0));
    assert.ok(placement);
    const locks = await lockNodes(
      f.client,
      f.keys,
      [{ node: 'new', moves: [{ instanceId: 'x', ordinal: 0, oldNode: 'old' }] }],
      lease,
      'me',
    );
    await fence('unfenced');
    const [locked] = locks.locked;
    const reads = locked?.moves.get('x/0');
    assert.ok(locked && reads);
    const move = { ...toCommit(x, 0, { 0: placement.modRevision }), move: { from: placement.value, reads } };
    const result = await commitPlacements(f.client, f.keys, [{ locked, replicas: [move] }], locks.revision, context());
    assert.deepEqual(result.conflicted, ['new']);
    assert.equal((await readRecord(f.client, placementCodec, f.keys.placement('x', 0)))?.value.node, 'old');
    assert.equal(
      (await readRecord(f.client, assignmentCodec, f.keys.assignment('old', 'x', 0)))?.value.desired,
      'running',
    );
  });
});
