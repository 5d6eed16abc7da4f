import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  AssignmentRecord,
  FailoverPolicy,
  InstanceRecord,
  NodeFenceRecord,
  PlacementRecord,
  PrimaryRecord,
  ReplicaStatus,
  Versioned,
} from '@service-foundry/core';
import {
  decideFailover,
  failoverSettleMs,
  lostTogether,
  lostTogetherGraceMs,
  positionWaitMs,
} from '../src/controller/failover.js';
import { desiredAssignments, type InstanceView } from '../src/controller/topology.js';
import { instanceRecord } from './helpers.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');

function v<T>(value: T, modRevision = '10'): Versioned<T> {
  return { key: 'k', value, modRevision, createRevision: '1', lease: '0' };
}

function assignment(ordinal: number, extra: Partial<AssignmentRecord> = {}): Versioned<AssignmentRecord> {
  const base: AssignmentRecord = {
    instanceId: 'db',
    ordinal,
    serviceName: 'postgres',
    planName: 'ha-small',
    resources: { cpuMillis: 1, memoryMb: 1, diskMb: 1 },
    desired: 'running',
  };
  return v({ ...base, ...extra });
}

function status(ordinal: number, extra: Partial<ReplicaStatus> = {}): Versioned<ReplicaStatus> {
  return v({
    instanceId: 'db',
    ordinal,
    node: `n${ordinal}`,
    state: 'running',
    host: `127.0.1.${ordinal}`,
    port: 5000 + ordinal,
    message: 'ready',
    updatedAt: new Date(t0).toISOString(),
    peer: { host: `172.17.0.${ordinal + 2}`, port: 5432 },
    ...extra,
  });
}

function view(over: Partial<InstanceView> = {}): InstanceView {
  const instance: InstanceRecord = {
    ...instanceRecord('db', 3, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }),
    io: { durability: 'remote-fsync', localIo: 'fsync' },
  };
  const placements: PlacementRecord[] = [0, 1, 2].map((ordinal) => ({
    instanceId: 'db',
    ordinal,
    node: `n${ordinal}`,
    placedAt: '',
    scheduler: 's',
  }));
  return {
    instance,
    placements,
    assignments: new Map([0, 1, 2].map((o) => [o, assignment(o)])),
    statuses: new Map(),
    primary: undefined,
    liveNodes: new Set(['n0', 'n1', 'n2']),
    replicated: true,
    ...over,
  };
}

const primaryAt = (ordinal: number, epoch: string): Versioned<PrimaryRecord> =>
  v({ instanceId: 'db', ordinal, node: `n${ordinal}`, host: 'h', port: 1, electedAt: '' }, epoch);

describe('topology: the roles each assignment should carry', () => {
  it('bootstraps the lowest live ordinal as primary at epoch 0 and leaves the others waiting', () => {
    const changes = desiredAssignments(view({ liveNodes: new Set(['n1', 'n2']) }));
    assert.deepEqual(
      changes.map((c) => [c.ordinal, c.next.role, c.next.epoch]),
      [[1, 'primary', 0]],
    );
    assert.deepEqual(changes[0]?.next.io, { durability: 'remote-fsync', localIo: 'fsync' });
  });

  it('does nothing more while a bootstrap primary exists and no primary key is written', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 0 })],
      [1, assignment(1)],
      [2, assignment(2)],
    ]);
    assert.deepEqual(desiredAssignments(view({ assignments })), []);
  });

  it('after election: primary gets the epoch, replicas follow its peer address', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 0 })],
      [1, assignment(1)],
      [2, assignment(2)],
    ]);
    const changes = desiredAssignments(
      view({ assignments, primary: primaryAt(0, '42'), statuses: new Map([[0, status(0)]]) }),
    );
    assert.deepEqual(
      changes.map((c) => [c.ordinal, c.next.role, c.next.epoch, c.next.upstream?.host]),
      [
        [0, 'primary', 42, undefined],
        [1, 'replica', 42, '172.17.0.2'],
        [2, 'replica', 42, '172.17.0.2'],
      ],
    );
  });

  it('waits to point replicas until the primary reports its peer address', () => {
    const io = { durability: 'remote-fsync' as const, localIo: 'fsync' as const };
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42, io })],
      [1, assignment(1)],
    ]);
    assert.deepEqual(desiredAssignments(view({ assignments, primary: primaryAt(0, '42') })), []);
  });

  it('takes no upstream from a primary that is restarting or reports an older epoch', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42 })],
      [1, assignment(1)],
    ]);
    const starting = new Map([[0, status(0, { state: 'starting', epoch: 42 })]]);
    const older = new Map([[0, status(0, { epoch: 41 })]]);
    for (const statuses of [starting, older]) {
      const changes = desiredAssignments(view({ assignments, primary: primaryAt(0, '42'), statuses }));
      assert.equal(changes.find((c) => c.ordinal === 1)?.next.upstream, undefined);
    }
  });

  it('demotes the old primary with a new generation, even while its node is down', () => {
    const io = { durability: 'remote-fsync' as const, localIo: 'fsync' as const };
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42, io })],
      [1, assignment(1, { role: 'replica', epoch: 42, io, upstream: { host: '172.17.0.2', port: 5432 } })],
      [2, assignment(2, { role: 'replica', epoch: 42, io, upstream: { host: '172.17.0.2', port: 5432 } })],
    ]);
    const changes = desiredAssignments(
      view({
        assignments,
        primary: primaryAt(1, '50'),
        statuses: new Map([[1, status(1)]]),
        liveNodes: new Set(['n1', 'n2']),
      }),
    );
    const byOrdinal = new Map(changes.map((c) => [c.ordinal, c.next]));
    assert.equal(byOrdinal.get(0)?.role, 'replica');
    assert.equal(byOrdinal.get(0)?.generation, 1, 'rebuilt from the new primary, not started from its diverged copy');
    assert.equal(byOrdinal.get(1)?.role, 'primary');
    assert.equal(byOrdinal.get(1)?.epoch, 50);
    assert.equal(byOrdinal.get(2)?.upstream?.host, '172.17.0.3');
  });

  it('C2: a replica gets its first role only once the primary lists its node, read at or after its placement', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42 })],
      [1, v(assignment(1).value, '30')],
      [2, { ...assignment(2), createRevision: '60' }],
    ]);
    const firstRoles = (peers: ReplicaStatus['peers']) =>
      desiredAssignments(
        view({
          assignments,
          primary: primaryAt(0, '42'),
          statuses: new Map([[0, status(0, peers ? { peers } : {})]]),
        }),
      )
        .filter((c) => c.ordinal !== 0)
        .map((c) => c.ordinal);
    assert.deepEqual(firstRoles({ nodes: [], revision: '0' }), [], 'the primary knows of nobody yet');
    assert.deepEqual(firstRoles({ nodes: ['n1'], revision: '59' }), [1], 'n2 is not listed');
    assert.deepEqual(
      firstRoles({ nodes: ['n1', 'n2'], revision: '59' }),
      [1],
      'n2 listed, but read before replica 2 was placed there (revision 60)',
    );
    assert.deepEqual(firstRoles({ nodes: ['n1', 'n2'], revision: '60' }), [1, 2]);
    assert.deepEqual(firstRoles(undefined), [1, 2], 'an agent without the failsafe publishes no peers');
    // A relocation's old node shares the status key: its word is not the primary's.
    const fromAnotherNode = desiredAssignments(
      view({
        assignments,
        primary: primaryAt(0, '42'),
        statuses: new Map([[0, status(0, { node: 'n9', peers: { nodes: ['n1', 'n2'], revision: '60' } })]]),
      }),
    ).filter((c) => c.ordinal !== 0);
    assert.deepEqual(fromAnotherNode, [], 'a status written by another node than the primary’s');
  });

  it('C2 does not hold back a replica that already has a role (re-pointed after a failover)', () => {
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42 })],
      [1, assignment(1, { role: 'replica', epoch: 41, upstream: { host: '172.17.0.9', port: 5432 } })],
    ]);
    const changes = desiredAssignments(
      view({
        assignments,
        primary: primaryAt(0, '42'),
        statuses: new Map([[0, status(0, { peers: { nodes: [], revision: '0' } })]]),
      }),
    );
    assert.deepEqual(
      changes.filter((c) => c.ordinal !== 0).map((c) => [c.ordinal, c.next.epoch, c.next.upstream?.host]),
      [[1, 42, '172.17.0.2']],
    );
  });

  it('demotes the old primary without the upstream it followed before its promotion, until the new primary serves', () => {
    const stale = { host: '172.17.0.9', port: 5432 };
    const assignments = new Map([
      [0, assignment(0, { role: 'primary', epoch: 42, upstream: stale })],
      [1, assignment(1, { role: 'replica', epoch: 42, upstream: { host: '172.17.0.2', port: 5432 } })],
    ]);
    const demotion = (statuses: InstanceView['statuses']) =>
      desiredAssignments(
        view({ assignments, primary: primaryAt(1, '50'), statuses, liveNodes: new Set(['n0', 'n1']) }),
      ).find((c) => c.ordinal === 0)?.next;
    const waiting = demotion(new Map());
    assert.equal(waiting?.role, 'replica');
    assert.equal(waiting?.upstream, undefined, 'no upstream rather than the stale one');
    assert.deepEqual(demotion(new Map([[1, status(1, { epoch: 50 })]]))?.upstream, { host: '172.17.0.3', port: 5432 });
  });

  it('changes nothing for services without native replication', () => {
    assert.deepEqual(desiredAssignments(view({ replicated: false })), []);
  });
});

describe('failover state machine: every transition', () => {
  const fenced = (state: NodeFenceRecord['state'], reason = 'x', at = t0 + 50): Versioned<NodeFenceRecord> =>
    v({ node: 'n0', state, reason, by: 'controller', at: new Date(at).toISOString() });
  const policy = (fencing: FailoverPolicy['fencing']): FailoverPolicy => ({
    fencing,
    fencingTimeoutSeconds: 10,
    maxLagBytes: 1000,
  });
  const replicas = (p1: string, p2: string, at = t0 + 100) =>
    new Map([
      [1, status(1, { role: 'replica', position: p1, positionAt: new Date(at).toISOString() })],
      [2, status(2, { role: 'replica', position: p2, positionAt: new Date(at).toISOString() })],
    ]);
  const down = (over: Partial<InstanceView> = {}) =>
    view({ primary: primaryAt(0, '42'), liveNodes: new Set(['n1', 'n2']), statuses: replicas('100', '200'), ...over });
  const input = (over: Partial<Parameters<typeof decideFailover>[0]> = {}) => ({
    view: down(),
    policy: policy('required'),
    suspectSince: t0,
    now: t0 + failoverSettleMs + 100,
    fence: undefined,
    fencingStarted: false,
    lastPrimaryPosition: undefined,
    ...over,
  });

  it('healthy: the primary node is alive → nothing to do', () => {
    assert.deepEqual(decideFailover(input({ view: view({ primary: primaryAt(0, '42') }) })), { kind: 'none' });
  });
  it('settle: lost less than 1 s ago, no fencing started → watch it (other leases may follow, the agent may be back)', () => {
    const settling = decideFailover(input({ now: t0 + failoverSettleMs - 1 }));
    assert.equal(settling.kind, 'wait');
    assert.match(settling.kind === 'wait' ? settling.reason : '', /watching it for 1000 ms/);
    assert.equal(decideFailover(input({ now: t0 + 10, policy: policy('off') })).kind, 'wait', 'under `off` too');
    assert.deepEqual(decideFailover(input({ now: t0 + failoverSettleMs })), { kind: 'fence', node: 'n0' });
  });
  it('lost together with other nodes (etcd back after an outage) → wait for the agents, then fail over as usual', () => {
    const waiting = decideFailover(input({ lostTogether: true }));
    assert.equal(waiting.kind, 'wait');
    assert.match(waiting.kind === 'wait' ? waiting.reason : '', /lost its lease together with other nodes/);
    const late = decideFailover(input({ lostTogether: true, now: t0 + lostTogetherGraceMs }));
    assert.deepEqual(late, { kind: 'fence', node: 'n0' }, 'not back within the grace: a real loss');
    const back = decideFailover(input({ lostTogether: true, view: view({ primary: primaryAt(0, '42') }) }));
    assert.deepEqual(back, { kind: 'none' }, 'its agent registered again: nothing to do');
  });
  describe('silent: the node still holds its lease, but its agent stopped answering the probes', () => {
    const registered = () => down({ liveNodes: new Set(['n0', 'n1', 'n2']) });
    it('a registered node that is not silent → nothing to do, whatever the policy', () => {
      assert.deepEqual(decideFailover(input({ view: registered() })), { kind: 'none' });
    });
    it('policy `off` → nothing on silence alone: only the lease proves the agent fenced itself', () => {
      assert.deepEqual(decideFailover(input({ view: registered(), silent: true, policy: policy('off') })), {
        kind: 'none',
      });
    });
    it('not fenced → fence at once: no settle, no lost-together wait', () => {
      assert.deepEqual(decideFailover(input({ view: registered(), silent: true, now: t0 + 1 })), {
        kind: 'fence',
        node: 'n0',
      });
      assert.deepEqual(decideFailover(input({ view: registered(), silent: true, lostTogether: true, now: t0 + 1 })), {
        kind: 'fence',
        node: 'n0',
      });
    });
    it('fencing under way, or failed under `required` → wait / blocked, as for a lost lease', () => {
      assert.equal(decideFailover(input({ view: registered(), silent: true, fencingStarted: true })).kind, 'wait');
      assert.equal(
        decideFailover(input({ view: registered(), silent: true, fence: fenced('failed') })).kind,
        'blocked',
      );
    });
    it('fenced → revoke its lease (never promote while the node key exists)', () => {
      assert.deepEqual(decideFailover(input({ view: registered(), silent: true, fence: fenced('fenced') })), {
        kind: 'revoke',
        node: 'n0',
        reason: 'node n0 is fenced; revoking its lease',
      });
    });
    it('`best-effort` past its timeout, not fenced → wait for the lease, never promote over it', () => {
      const waiting = decideFailover(
        input({
          view: registered(),
          silent: true,
          policy: policy('best-effort'),
          fence: fenced('failed'),
          now: t0 + 11_000,
        }),
      );
      assert.equal(waiting.kind, 'wait');
      assert.match(waiting.kind === 'wait' ? waiting.reason : '', /still holds its lease/);
    });
    it('lease revoked (or expired) after the fence → choose at once, positions read after the fence', () => {
      const promoted = decideFailover(input({ silent: true, fence: fenced('fenced'), now: t0 + 200 }));
      assert.equal(promoted.kind, 'promote');
      assert.equal(promoted.kind === 'promote' ? promoted.ordinal : -1, 2);
    });
  });
  it('which losses count as together: two or more leases at once, not fewer than the nodes alive', () => {
    assert.equal(lostTogether({ together: 3, alive: 0 }), true, 'every lease expired at once');
    assert.equal(lostTogether({ together: 2, alive: 1 }), true, 'most nodes at once');
    assert.equal(lostTogether({ together: 2, alive: 2 }), true);
    assert.equal(lostTogether({ together: 1, alive: 0 }), false, 'a node alone');
    assert.equal(lostTogether({ together: 2, alive: 3 }), false, 'a minority: ordinary failures');
  });
  it('suspect, not fenced → fence the node', () => {
    assert.deepEqual(decideFailover(input()), { kind: 'fence', node: 'n0' });
    assert.deepEqual(decideFailover(input({ fence: fenced('unfenced') })), { kind: 'fence', node: 'n0' });
  });
  it('a fence outcome from an earlier incident → fence again (a failure is retried, a stale fence is not trusted)', () => {
    const old = t0 - 60_000;
    assert.deepEqual(decideFailover(input({ fence: fenced('fenced', 'x', old) })), { kind: 'fence', node: 'n0' });
    assert.deepEqual(decideFailover(input({ fence: fenced('failed', 'x', old) })), { kind: 'fence', node: 'n0' });
  });
  it("our fencing in progress → wait; another controller's attempt → join it", () => {
    assert.equal(decideFailover(input({ fencingStarted: true })).kind, 'wait');
    assert.equal(decideFailover(input({ fence: fenced('fencing'), fencingStarted: true })).kind, 'wait');
    assert.deepEqual(decideFailover(input({ fence: fenced('fencing') })), { kind: 'fence', node: 'n0' });
  });
  it('a failed fence is retried after 30 s', () => {
    const d = decideFailover(input({ fence: fenced('failed', 'x', t0 + 50), now: t0 + 50 + 30_001 }));
    assert.deepEqual(d, { kind: 'fence', node: 'n0' });
  });
  it('fence failed under `required` → blocked, loudly, however long it takes', () => {
    const d = decideFailover(
      input({ fence: fenced('failed', 'fence_ipmilan: timeout', t0 + 3_599_000), now: t0 + 3_600_000 }),
    );
    assert.deepEqual(d, {
      kind: 'blocked',
      reason: 'failover blocked: fencing of node n0 failed (fence_ipmilan: timeout)',
    });
  });
  it('fence failed under `best-effort` → wait until the timeout, then promote', () => {
    assert.equal(decideFailover(input({ policy: policy('best-effort'), fence: fenced('failed') })).kind, 'wait');
    const d = decideFailover(input({ policy: policy('best-effort'), fence: fenced('failed'), now: t0 + 11_000 }));
    assert.equal(d.kind, 'promote');
  });
  it('fenced → promote the most advanced replica', () => {
    const d = decideFailover(input({ fence: fenced('fenced') }));
    assert.equal(d.kind, 'promote');
    assert.equal(d.kind === 'promote' && d.ordinal, 2);
  });
  it('policy `off` → promote without fencing (lease expiry means the agent fenced itself)', () => {
    assert.equal(decideFailover(input({ policy: policy('off') })).kind, 'promote');
  });
  it('a synchronous durability: a replica still stale after 3 s blocks the failover (it may hold acknowledged writes), until it reports', () => {
    const stale = status(1, { role: 'replica', position: '900', positionAt: new Date(t0 - 500).toISOString() });
    const fresh2 = status(2, { role: 'replica', position: '200', positionAt: new Date(t0 + 100).toISOString() });
    for (const durability of ['received', 'remote-fsync'] as const) {
      const view = down({
        statuses: new Map([
          [1, stale],
          [2, fresh2],
        ]),
      });
      view.instance = { ...view.instance, io: { durability, localIo: 'fsync' } };
      const blocked = decideFailover(input({ view, fence: fenced('fenced'), now: t0 + 50 + positionWaitMs + 1 }));
      assert.equal(blocked.kind, 'blocked', durability);
      assert.match(blocked.kind === 'blocked' ? blocked.reason : '', /replica 1 on a live node reported no position/);
      assert.match(
        blocked.kind === 'blocked' ? blocked.reason : '',
        new RegExp(`with ${durability} it may hold acknowledged writes`),
      );
      // It reports (read after the fence): the most advanced replica is promoted.
      const reported = status(1, { role: 'replica', position: '900', positionAt: new Date(t0 + 9000).toISOString() });
      view.statuses = new Map([
        [1, reported],
        [2, fresh2],
      ]);
      const d = decideFailover(input({ view, fence: fenced('fenced'), now: t0 + 9100 }));
      assert.equal(d.kind === 'promote' && d.ordinal, 1, durability);
    }
  });
  it('async: positions read before the primary was lost are stale → wait up to 3 s, then use the fresh ones', () => {
    const statuses = new Map([
      [1, status(1, { role: 'replica', position: '900', positionAt: new Date(t0 - 500).toISOString() })],
      [2, status(2, { role: 'replica', position: '200', positionAt: new Date(t0 + 100).toISOString() })],
    ]);
    const asyncView = (over: Parameters<typeof down>[0]) => {
      const v = down(over);
      v.instance = { ...v.instance, io: { durability: 'async', localIo: 'fsync' } };
      return v;
    };
    const base = { view: asyncView({ statuses }), fence: fenced('fenced') };
    assert.equal(decideFailover(input(base)).kind, 'wait');
    // Fresh means read after the fence (t0 + 50), not just after the lease was lost.
    const beforeFence = new Map([
      ...statuses,
      [2, status(2, { role: 'replica', position: '200', positionAt: new Date(t0 + 10).toISOString() })],
    ]);
    assert.equal(
      decideFailover(input({ view: asyncView({ statuses: beforeFence }), fence: fenced('fenced'), now: t0 + 60 })).kind,
      'wait',
    );
    const d = decideFailover(input({ ...base, now: t0 + 50 + positionWaitMs + 1 }));
    assert.equal(d.kind === 'promote' && d.ordinal, 2);
  });
  it('equal positions → the lowest ordinal', () => {
    const d = decideFailover(input({ view: down({ statuses: replicas('300', '300') }), fence: fenced('fenced') }));
    assert.equal(d.kind === 'promote' && d.ordinal, 1);
  });
  it('no running replica on a live node → blocked', () => {
    const d = decideFailover(input({ view: down({ statuses: new Map() }), fence: fenced('fenced') }));
    assert.equal(d.kind, 'blocked');
  });
  it('async: a candidate lagging more than max_lag_bytes → blocked', () => {
    const asyncView = down();
    asyncView.instance = { ...asyncView.instance, io: { durability: 'async', localIo: 'fsync' } };
    const d = decideFailover(input({ view: asyncView, fence: fenced('fenced'), lastPrimaryPosition: 5000n }));
    assert.equal(d.kind, 'blocked');
    assert.match(d.kind === 'blocked' ? d.reason : '', /4800 bytes behind/);
    const ok = decideFailover(input({ view: asyncView, fence: fenced('fenced'), lastPrimaryPosition: 1100n }));
    assert.equal(ok.kind, 'promote');
  });
});
