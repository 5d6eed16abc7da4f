import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  AssignmentRecord,
  PlacementRecord,
  PrimaryRecord,
  ReplicaStatus,
  TransferStatusRecord,
  Versioned,
} from '@service-foundry/core';
import { decideFailover, failoverSettleMs } from '../src/controller/failover.js';
import type { InstanceView } from '../src/controller/topology.js';
import { shippingAssignments } from '../src/controller/volume-shipping.js';
import { instanceRecord } from './helpers.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');

function v<T>(value: T, modRevision = '10'): Versioned<T> {
  return { key: 'k', value, modRevision, createRevision: '1', lease: '0' };
}

function assignment(ordinal: number, extra: Partial<AssignmentRecord> = {}): Versioned<AssignmentRecord> {
  return v({
    instanceId: 'kv',
    ordinal,
    serviceName: 'redis',
    planName: 'standby-small',
    resources: { cpuMillis: 1, memoryMb: 1, diskMb: 1 },
    desired: 'running',
    ...extra,
  });
}

function view(over: Partial<InstanceView> = {}): InstanceView {
  const placements: PlacementRecord[] = [0, 1, 2].map((ordinal) => ({
    instanceId: 'kv',
    ordinal,
    node: `n${ordinal}`,
    placedAt: '',
    scheduler: 's',
  }));
  return {
    instance: instanceRecord('kv', 3, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }),
    placements,
    assignments: new Map([0, 1, 2].map((o) => [o, assignment(o)])),
    statuses: new Map(),
    primary: undefined,
    liveNodes: new Set(['n0', 'n1', 'n2']),
    replicated: false,
    shipping: { intervalSeconds: 5 },
    ...over,
  };
}

const primaryAt = (ordinal: number, epoch: string): Versioned<PrimaryRecord> =>
  v({ instanceId: 'kv', ordinal, node: `n${ordinal}`, host: 'h', port: 1, electedAt: '' }, epoch);
/** The primary's status (replica 0 on n0), its agent listing `nodes` as read at `revision`. */
const primaryStatus = (nodes: string[], revision = '10'): Versioned<ReplicaStatus> =>
  v({
    instanceId: 'kv',
    ordinal: 0,
    node: 'n0',
    state: 'running',
    message: 'ready',
    updatedAt: new Date(t0).toISOString(),
    peers: { nodes, revision },
  });
const seedFrom = (ordinal: number) => ({
  from: { node: `n${ordinal}`, volume: `replica.kv.${ordinal}` },
  round: 1,
  everySeconds: 5,
});

describe('volume shipping: the assignments of primary and standbys', () => {
  it('bootstraps the lowest live ordinal as primary at epoch 0; the others wait for a primary to copy', () => {
    const changes = shippingAssignments(view({ liveNodes: new Set(['n1', 'n2']) }), 5);
    assert.deepEqual(
      changes.map((c) => [c.ordinal, c.next.role, c.next.epoch, c.next.seed]),
      [[1, 'primary', 0, undefined]],
    );
  });

  it('does nothing more while a bootstrap primary exists and no primary key is written', () => {
    const assignments = new Map([[0, assignment(0, { role: 'primary', epoch: 0 })]]);
    assert.deepEqual(shippingAssignments(view({ assignments }), 5), []);
  });

  it("after election: the primary gets the epoch, every other replica a periodic seed from the primary's volume", () => {
    const changes = shippingAssignments(
      view({ primary: primaryAt(0, '42'), statuses: new Map([[0, primaryStatus(['n1', 'n2'])]]) }),
      5,
    );
    assert.deepEqual(
      changes.map((c) => [c.ordinal, c.next.role, c.next.epoch, c.next.seed]),
      [
        [0, 'primary', 42, undefined],
        [1, 'replica', 42, seedFrom(0)],
        [2, 'replica', 42, seedFrom(0)],
      ],
    );
  });

  it('C2: a standby gets its first seed only once the primary lists its node, read at or after its placement', () => {
    const seeded = (statuses: InstanceView['statuses']) =>
      shippingAssignments(view({ primary: primaryAt(0, '42'), statuses }), 5)
        .filter((c) => c.next.seed)
        .map((c) => c.ordinal);
    assert.deepEqual(seeded(new Map()), [], "no primary's status yet");
    assert.deepEqual(seeded(new Map([[0, primaryStatus(['n2'])]])), [2]);
    assert.deepEqual(seeded(new Map([[0, primaryStatus(['n1', 'n2'], '0')]])), [], 'read before the placements');
  });

  it('after a failover: the promoted standby loses its seed, the others (the old primary too, even while down) copy from it', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42 })],
      [1, assignment(1, { role: 'replica', epoch: 42, seed: seedFrom(0) })],
      [2, assignment(2, { role: 'replica', epoch: 42, seed: seedFrom(0) })],
    ]);
    const changes = shippingAssignments(
      view({ assignments, primary: primaryAt(1, '50'), liveNodes: new Set(['n1', 'n2']) }),
      5,
    );
    const next = new Map(changes.map((c) => [c.ordinal, c.next]));
    assert.equal(next.get(1)?.role, 'primary');
    assert.equal(next.get(1)?.seed, undefined);
    assert.deepEqual(next.get(0)?.seed, seedFrom(1));
    assert.equal(next.get(0)?.role, 'replica');
    assert.deepEqual(next.get(2)?.seed, seedFrom(1));
  });

  it('leaves settled assignments and stopped or removed ones alone', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42 })],
      [1, assignment(1, { role: 'replica', epoch: 42, seed: seedFrom(0) })],
      [2, assignment(2, { desired: 'stopped' })],
    ]);
    assert.deepEqual(shippingAssignments(view({ assignments, primary: primaryAt(0, '42') }), 5), []);
  });
});

describe('volume shipping: which standby a failover promotes', () => {
  const copy = (ordinal: number, copiedAt: number | undefined, from = 'n0'): TransferStatusRecord => ({
    instanceId: 'kv',
    ordinal,
    node: `n${ordinal}`,
    from: { node: from, volume: 'replica.kv.0' },
    round: 1,
    state: 'copied',
    message: '',
    updatedAt: '',
    ...(copiedAt !== undefined ? { copiedAt: new Date(copiedAt).toISOString() } : {}),
  });
  const decide = (copies: Map<number, TransferStatusRecord>, liveNodes = new Set(['n1', 'n2'])) =>
    decideFailover({
      view: view({ primary: primaryAt(0, '42'), liveNodes }),
      policy: { fencing: 'off', fencingTimeoutSeconds: 10, maxLagBytes: 0 },
      suspectSince: t0,
      now: t0 + failoverSettleMs + 100,
      fence: undefined,
      fencingStarted: false,
      lastPrimaryPosition: undefined,
      snapshotOf: (ordinal) => copies.get(ordinal),
    });

  it('promotes the standby with the newest complete copy, and says how old it is', () => {
    const decision = decide(
      new Map([
        [1, copy(1, t0 - 4000)],
        [2, copy(2, t0 - 1500)],
      ]),
    );
    assert.equal(decision.kind, 'promote');
    assert.equal(decision.kind === 'promote' && decision.ordinal, 2);
    assert.match(
      decision.kind === 'promote' ? decision.reason : '',
      /standby 2 on n2 holds the newest complete copy \(taken 1\.5 s before/,
    );
  });

  it('ignores standbys on dead nodes, without a complete copy, or holding a copy of another primary', () => {
    const copies = new Map([
      [1, copy(1, undefined)],
      [2, copy(2, t0 - 1000, 'n9')],
    ]);
    assert.deepEqual(decide(copies), {
      kind: 'blocked',
      reason: 'failover blocked: no standby on a live node holds a complete copy (primary node n0 is down)',
    });
    const onDeadNode = decide(new Map([[2, copy(2, t0 - 1000)]]), new Set(['n1']));
    assert.equal(onDeadNode.kind, 'blocked');
  });

  it('fences first, as for native replication', () => {
    const decision = decideFailover({
      view: view({ primary: primaryAt(0, '42'), liveNodes: new Set(['n1', 'n2']) }),
      policy: { fencing: 'required', fencingTimeoutSeconds: 10, maxLagBytes: 0 },
      suspectSince: t0,
      now: t0 + failoverSettleMs + 100,
      fence: undefined,
      fencingStarted: false,
      lastPrimaryPosition: undefined,
      snapshotOf: () => copy(1, t0 - 1000),
    });
    assert.deepEqual(decision, { kind: 'fence', node: 'n0' });
  });
});
