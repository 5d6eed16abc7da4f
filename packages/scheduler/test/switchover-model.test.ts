import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReplicaStatus, RouteRecord, SwitchoverRecord, Versioned } from '@service-foundry/core';
import {
  decideSwitchover,
  inSyncReplicas,
  rejoiningPrimary,
  restartedPrimary,
  type SwitchoverInput,
  stoppedPrimary,
  switchoverCatchUpMs,
  switchoverFreshMs,
  switchoverPositionWaitMs,
  switchoverPromoteTimeoutMs,
  switchoverReportWaitMs,
  switchoverStopTimeoutMs,
  targetProblem,
} from '../src/controller/switchover.js';
import type { InstanceView } from '../src/controller/topology.js';
import { assignment, iso, primaryAt, status, t0, view } from './replica-view-fixtures.js';

/**
 * The switchover state machine (switchover.ts), one test per row of its table: replica 0
 * on n0 is primary at epoch 100, replicas 1 and 2 follow it; the switchover goes to 1.
 */

function record(extra: Partial<SwitchoverRecord> = {}): SwitchoverRecord {
  return {
    instanceId: 'db',
    from: { ordinal: 0, node: 'n0' },
    fromEpoch: 100,
    to: { ordinal: 1, node: 'n1' },
    phase: 'requested',
    message: 'requested',
    requestedBy: 'admin',
    requestedAt: iso(t0),
    updatedAt: iso(t0),
    ...extra,
  };
}

function input(over: Partial<SwitchoverInput> = {}): SwitchoverInput {
  return { view: view(), record: record(), now: t0, lastPrimaryPosition: 1000n, route: undefined, ...over };
}

const route = (epoch: number): RouteRecord => ({
  instanceId: 'db',
  protocol: 'tcp',
  port: 30000,
  target: { host: '127.0.0.1', port: 5001 },
  epoch,
});

/** Its agent reported the old primary stopped at t0 + 1 s; positions read after it have positionAt > that. */
const stoppedAt = t0 + 1000;
const stoppingRecord = (extra: Partial<SwitchoverRecord> = {}) =>
  record({ phase: 'stopping', stoppingAt: iso(t0), updatedAt: iso(t0), ...extra });
const stoppedView = (statuses: Array<Versioned<ReplicaStatus>> = [], over: Partial<InstanceView> = {}) =>
  view(over, [
    status(0, {
      state: 'stopped',
      updatedAt: iso(stoppedAt),
      role: undefined,
      position: undefined,
      positionAt: undefined,
    }),
    status(1, { position: '1200', positionAt: iso(stoppedAt + 200) }),
    status(2, { position: '1200', positionAt: iso(stoppedAt + 300) }),
    ...statuses,
  ]);

describe('switchover: done and failed', () => {
  it('does nothing once done or failed', () => {
    assert.deepEqual(decideSwitchover(input({ record: record({ phase: 'done' }) })), { kind: 'none' });
    assert.deepEqual(decideSwitchover(input({ record: record({ phase: 'failed' }) })), { kind: 'none' });
  });
});

describe('switchover: requested', () => {
  it('refuses when the primary changed since the request (another epoch or another replica)', () => {
    for (const primary of [primaryAt(0, 101), primaryAt(2, 100), undefined]) {
      const d = decideSwitchover(input({ view: view({ primary }) }));
      assert.equal(d.kind, 'fail');
      assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_REFUSED' && !d.restart);
      assert.match(d.kind === 'fail' ? d.reason : '', /primary changed/);
    }
  });

  it("refuses when the primary's node is not live: failover is in charge", () => {
    const d = decideSwitchover(input({ view: view({ liveNodes: new Set(['n1', 'n2']) }) }));
    assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_REFUSED');
    assert.match(d.reason, /failover is in charge/);
  });

  it('refuses, saying why, when the target is not in sync', () => {
    const cases: Array<[Array<Versioned<ReplicaStatus>>, Partial<InstanceView>, RegExp]> = [
      [[status(1, { state: 'starting' })], {}, /not a running replica \(starting/],
      [[status(1, { epoch: 90 })], {}, /does not follow the current primary yet \(epoch 90, current 100\)/],
      [[], { liveNodes: new Set(['n0', 'n2']) }, /node n1 is not live/],
    ];
    for (const [statuses, over, reason] of cases) {
      const d = decideSwitchover(input({ view: view(over, statuses), lastPrimaryPosition: 1000n }));
      assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_REFUSED', JSON.stringify(d));
      assert.match(d.reason, reason);
    }
    const far = decideSwitchover(
      input({ view: view({}, [status(1, { position: '1000' })]), lastPrimaryPosition: 1000n + 4097n }),
    );
    assert.ok(far.kind === 'fail' && /4097 bytes behind the primary \(more than 4096\)/.test(far.reason));
  });

  it('waits up to 20 s for a missing or late position report of the target, then refuses saying so', () => {
    const late = t0 + switchoverReportWaitMs;
    const cases: Array<[Array<Versioned<ReplicaStatus>>, RegExp]> = [
      [[status(1, { position: undefined })], /has not reported a replication position/],
      [[status(1, { positionAt: iso(t0 - switchoverFreshMs - 1000) })], /last reported its position 31 s ago/],
    ];
    for (const [statuses, reason] of cases) {
      const waiting = decideSwitchover(input({ view: view({}, statuses), now: late - 1 }));
      assert.ok(waiting.kind === 'wait', JSON.stringify(waiting));
      assert.match(waiting.reason, /waiting for replica 1 to report/);
      const d = decideSwitchover(input({ view: view({}, statuses), now: late }));
      assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_REFUSED' && !d.restart, JSON.stringify(d));
      assert.match(d.reason, reason);
    }
  });

  it('stops the old primary when the target is in sync', () => {
    assert.deepEqual(decideSwitchover(input()), { kind: 'stop' });
  });
});

describe('switchover: stopping', () => {
  it('fails and restarts the old primary when a failover moved the primary key', () => {
    const d = decideSwitchover(input({ view: view({ primary: primaryAt(2, 120) }), record: stoppingRecord() }));
    assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_FAILED' && d.restart);
  });

  it('fails and restarts the old primary when its node is lost while it stops', () => {
    const d = decideSwitchover(input({ view: view({ liveNodes: new Set(['n1', 'n2']) }), record: stoppingRecord() }));
    assert.ok(d.kind === 'fail' && d.restart && /was lost while it was stopping/.test(d.reason));
  });

  it('waits while the old primary stops, within the stop timeout', () => {
    const d = decideSwitchover(input({ record: stoppingRecord(), now: t0 + switchoverStopTimeoutMs - 1 }));
    assert.equal(d.kind, 'wait');
  });

  it('fails and restarts it when it did not stop in time', () => {
    const d = decideSwitchover(input({ record: stoppingRecord(), now: t0 + switchoverStopTimeoutMs + 1 }));
    assert.ok(d.kind === 'fail' && d.restart && /did not stop within 40 s/.test(d.reason));
  });

  it('fails and restarts the old primary when the target stopped running', () => {
    const d = decideSwitchover(
      input({ view: stoppedView([status(1, { state: 'failed' })]), record: stoppingRecord(), now: stoppedAt + 500 }),
    );
    assert.ok(d.kind === 'fail' && d.restart && /stopped running/.test(d.reason));
  });

  it('waits for a target position read after the stop', () => {
    const stale = status(1, { position: '1200', positionAt: iso(stoppedAt - 1) });
    const d = decideSwitchover(input({ view: stoppedView([stale]), record: stoppingRecord(), now: stoppedAt + 500 }));
    assert.equal(d.kind, 'wait');
  });

  it('waits (< 3 s) for the other replicas to report after the stop', () => {
    const stale = status(2, { position: '1300', positionAt: iso(stoppedAt - 1) });
    const early = decideSwitchover(
      input({ view: stoppedView([stale]), record: stoppingRecord(), now: stoppedAt + switchoverPositionWaitMs - 1 }),
    );
    assert.equal(early.kind, 'wait');
    // After that, a replica that did not report does not hold the switchover up.
    const later = decideSwitchover(
      input({ view: stoppedView([stale]), record: stoppingRecord(), now: stoppedAt + switchoverPositionWaitMs + 1 }),
    );
    assert.equal(later.kind, 'promote');
  });

  it('waits while the target is behind another replica or the old primary, within the catch-up time', () => {
    const ahead = status(2, { position: '1300', positionAt: iso(stoppedAt + 100) });
    const behindOther = decideSwitchover(
      input({ view: stoppedView([ahead]), record: stoppingRecord(), now: stoppedAt + 500 }),
    );
    assert.ok(behindOther.kind === 'wait' && /catching up \(100 bytes\)/.test(behindOther.reason));
    const behindPrimary = decideSwitchover(
      input({ view: stoppedView(), record: stoppingRecord(), now: stoppedAt + 500, lastPrimaryPosition: 1250n }),
    );
    assert.ok(behindPrimary.kind === 'wait' && /50 bytes/.test(behindPrimary.reason));
  });

  it('fails and restarts the old primary once the catch-up time passed', () => {
    const late = stoppedAt + switchoverCatchUpMs + 1;
    const ahead = status(2, { position: '1300', positionAt: iso(stoppedAt + 100) });
    const behind = decideSwitchover(input({ view: stoppedView([ahead]), record: stoppingRecord(), now: late }));
    assert.ok(behind.kind === 'fail' && behind.restart && /100 bytes behind after the stop/.test(behind.reason));
    const silent = status(1, { position: '1200', positionAt: iso(stoppedAt - 1) });
    const unreported = decideSwitchover(input({ view: stoppedView([silent]), record: stoppingRecord(), now: late }));
    assert.ok(unreported.kind === 'fail' && unreported.restart && /no position after the stop/.test(unreported.reason));
  });

  it('promotes the target once it holds everything, and re-points the other replicas to it', () => {
    const d = decideSwitchover(input({ view: stoppedView(), record: stoppingRecord(), now: stoppedAt + 500 }));
    assert.equal(d.kind, 'promote');
    assert.ok(d.kind === 'promote');
    assert.equal(d.target.ordinal, 1);
    assert.deepEqual(d.repoint, [{ ordinal: 2, node: 'n2', upstream: { host: '172.17.0.3', port: 5432 } }]);
    assert.match(d.reason, /holds everything the old primary wrote \(position 1200\)/);
    assert.equal(d.stoppedAt, iso(stoppedAt));
  });
});

describe('switchover: promoting', () => {
  const promoting = (extra: Partial<SwitchoverRecord> = {}) =>
    record({ phase: 'promoting', stoppingAt: iso(t0), stoppedAt: iso(stoppedAt), updatedAt: iso(t0 + 2000), ...extra });

  it('fails (nothing to restart) when a failover replaced the target', () => {
    const d = decideSwitchover(
      input({ view: view({ primary: primaryAt(2, 130) }), record: promoting({ toEpoch: 120 }), now: t0 + 3000 }),
    );
    assert.ok(d.kind === 'fail' && d.code === 'SF_ERR_SWITCHOVER_FAILED' && !d.restart);
  });

  it('is done once the route is at the new epoch', () => {
    const d = decideSwitchover(
      input({ view: view({ primary: primaryAt(1, 120) }), record: promoting({ toEpoch: 120 }), route: route(120) }),
    );
    assert.equal(d.kind, 'finish');
  });

  it('takes the epoch from the primary key naming the target when the record has none yet', () => {
    const d = decideSwitchover(
      input({ view: view({ primary: primaryAt(1, 120) }), record: promoting(), route: route(120) }),
    );
    assert.equal(d.kind, 'finish');
  });

  it('fails when the route did not follow within the promotion timeout', () => {
    const d = decideSwitchover(
      input({
        view: view({ primary: primaryAt(1, 120) }),
        record: promoting({ toEpoch: 120 }),
        route: route(100),
        now: t0 + 2000 + switchoverPromoteTimeoutMs + 1,
      }),
    );
    assert.ok(d.kind === 'fail' && !d.restart && /did not serve as primary within 60 s/.test(d.reason));
  });

  it('waits for the route otherwise', () => {
    const d = decideSwitchover(
      input({ view: view({ primary: primaryAt(1, 120) }), record: promoting({ toEpoch: 120 }), route: route(100) }),
    );
    assert.equal(d.kind, 'wait');
  });
});

describe('switchover: the target and the assignments', () => {
  it('lists replicas in sync, the most advanced first', () => {
    const v1 = view({}, [status(1, { position: '900' }), status(2, { position: '990' })]);
    assert.deepEqual(
      inSyncReplicas(v1, t0, 1000n, 4096).map((s) => s.ordinal),
      [2, 1],
    );
    assert.equal(targetProblem(v1, 0, t0, 1000n, 4096), 'replica 0 is the primary already');
    assert.equal(targetProblem(v1, 7, t0, 1000n, 4096), 'replica 7 is not placed on any node');
  });

  it('stops, rejoins and restarts the old primary through its assignment', () => {
    const a = assignment(0).value;
    assert.equal(stoppedPrimary(a).desired, 'stopped');
    const rejoin = rejoiningPrimary({ ...a, desired: 'stopped', upstream: { host: 'old', port: 1 } }, undefined);
    assert.deepEqual(
      [rejoin.desired, rejoin.role, rejoin.generation, rejoin.upstream, rejoin.image],
      ['running', 'replica', 3, undefined, undefined],
    );
    // An upgrade's switchover: the rebuilt old primary comes back on the instance's image.
    assert.equal(rejoiningPrimary({ ...a, image: 'pg:1' }, 'pg:2').image, 'pg:2');
    const restarted = restartedPrimary(stoppedPrimary(a));
    assert.deepEqual([restarted.desired, restarted.role, restarted.epoch], ['running', 'primary', 100]);
  });
});
