import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceView } from '../src/controller/topology.js';
import { desiredAssignments } from '../src/controller/topology.js';
import {
  decideUpgrade,
  imageRunProblem,
  type UpgradeInput,
  upgradeSwitchoverRetryMs,
} from '../src/controller/upgrade.js';
import { assignment, iso, primaryAt, status, t0, v, view } from './replica-view-fixtures.js';

/**
 * The upgrade roll (upgrade.ts), one test per row of its table: replica 0 primary at epoch
 * 100, replicas 1 and 2 follow; every container runs pg:1 and the instance moves to pg:2.
 */

const oldImage = 'pg:1';
const newImage = 'pg:2';

/** Replica `ordinal`'s assignment names `image`, and its status says it runs `runs`. */
function upgradeView(names: Record<number, string>, runs: Record<number, string>, over: Partial<InstanceView> = {}) {
  const base = view(over);
  const assignments = new Map(
    [...base.assignments].map(([o, a]) => [o, { ...a, value: { ...a.value, image: names[o] ?? oldImage } }]),
  );
  const statuses = new Map(
    [...base.statuses].map(([o, s]) => [o, { ...s, value: { ...s.value, image: runs[o] ?? oldImage } }]),
  );
  return { ...base, instance: { ...base.instance, image: newImage }, assignments, statuses, ...over };
}

function decide(v: InstanceView, over: Partial<UpgradeInput> = {}) {
  return decideUpgrade({
    view: v,
    now: t0,
    switchover: undefined,
    lastPrimaryPosition: 1000n,
    maxLagBytes: 4096,
    ...over,
  });
}

describe('upgrade roll (upgrade.ts)', () => {
  it('u0: an instance that names no image is left alone', () => {
    assert.deepEqual(decide(view()), { kind: 'settled' });
  });

  it('u1: a replica named the image and not yet running it: wait for it', () => {
    const step = decide(upgradeView({ 1: newImage }, {}));
    assert.equal(step.kind, 'wait');
    assert.match(step.kind === 'wait' ? step.description : '', /0 of 3 replicas run it; replica\(s\) 1 restarting/);
    const crashed = upgradeView({ 1: newImage }, { 1: newImage }, {});
    crashed.statuses.set(1, status(1, { state: 'failed', image: newImage }));
    assert.equal(decide(crashed).kind, 'wait');
  });

  it('u2: every replica named the image: no step left; the operation waits until each runs it', () => {
    const all = { 0: newImage, 1: newImage, 2: newImage };
    assert.deepEqual(decide(upgradeView(all, all)), { kind: 'settled' });
    assert.equal(imageRunProblem(upgradeView(all, all)), undefined);
    // The old primary still rebuilding after the switchover (or a new replica cloning).
    const rebuilding = upgradeView(all, { 1: newImage, 2: newImage });
    rebuilding.statuses.set(0, status(0, { state: 'creating', image: undefined }));
    assert.deepEqual(decide(rebuilding), { kind: 'settled' });
    assert.equal(imageRunProblem(rebuilding), `upgrading to ${newImage}: waiting for replica(s) 0 to run it`);
    assert.equal(imageRunProblem(view()), undefined, 'an instance that names no image');
  });

  it('u3: without native replication every replica is named at once (one restart)', () => {
    const step = decide(upgradeView({}, {}, { replicated: false }));
    assert.equal(step.kind, 'set-image');
    assert.deepEqual(step.kind === 'set-image' ? step.ordinals : [], [0, 1, 2]);
  });

  it('u4: no primary, or a switchover under way: wait', () => {
    assert.equal(decide(upgradeView({}, {}, { primary: undefined })).kind, 'wait');
    const busy = decide(upgradeView({}, {}), {
      switchover: {
        instanceId: 'db',
        from: { ordinal: 0, node: 'n0' },
        fromEpoch: 100,
        to: { ordinal: 1, node: 'n1' },
        phase: 'stopping',
        message: '',
        requestedBy: 'admin',
        requestedAt: iso(t0),
        updatedAt: iso(t0),
      },
    });
    assert.match(busy.kind === 'wait' ? busy.description : '', /switchover is under way \(stopping\)/);
  });

  it('u5: a replica not running in its role holds the next restart back', () => {
    const lagging = upgradeView({}, {});
    lagging.statuses.set(2, status(2, { state: 'starting', image: oldImage }));
    const step = decide(lagging);
    assert.match(step.kind === 'wait' ? step.description : '', /waiting for replica\(s\) 2 to run in their role/);
    const elsewhere = upgradeView({}, {});
    elsewhere.statuses.set(1, status(1, { epoch: 99, image: oldImage }));
    assert.equal(decide(elsewhere).kind, 'wait');
  });

  it('u6: the replicas first, lowest ordinal first, one at a time', () => {
    assert.deepEqual(decide(upgradeView({}, {})), {
      kind: 'set-image',
      ordinals: [1],
      description: `upgrading to ${newImage}: restarting replica 1 on it (1 of 3)`,
    });
    const second = decide(upgradeView({ 1: newImage }, { 1: newImage }));
    assert.deepEqual(second.kind === 'set-image' ? second.ordinals : [], [2]);
  });

  it('u7: a one-replica instance restarts its primary on the image', () => {
    const single = upgradeView({}, {});
    single.instance = { ...single.instance, replicas: 1 };
    const step = decide(single);
    assert.deepEqual(step.kind === 'set-image' ? step.ordinals : [], [0]);
    assert.match(step.kind === 'set-image' ? step.description : '', /unavailable until it is ready again/);
  });

  it('u8: after a failed upgrade switchover, waits before asking again', () => {
    const done = upgradeView({ 1: newImage, 2: newImage }, { 1: newImage, 2: newImage });
    const failed = {
      instanceId: 'db',
      from: { ordinal: 0, node: 'n0' },
      fromEpoch: 100,
      to: { ordinal: 1, node: 'n1' },
      phase: 'failed' as const,
      message: 'replica 1 lags',
      requestedBy: 'upgrade',
      requestedAt: iso(t0 - 1000),
      updatedAt: iso(t0 - 1000),
    };
    const step = decide(done, { switchover: failed });
    assert.match(step.kind === 'wait' ? step.description : '', /failed \(replica 1 lags\); asking again in 29 s/);
    const now = t0 + upgradeSwitchoverRetryMs;
    for (const o of [1, 2]) done.statuses.set(o, status(o, { image: newImage, positionAt: iso(now - 500) }));
    assert.equal(decide(done, { switchover: failed, now }).kind, 'switchover');
    // An operator's own failed switchover does not hold the upgrade back.
    assert.equal(decide(done, { switchover: { ...failed, requestedBy: 'admin' } }).kind, 'switchover');
  });

  it('u9: only the primary left: switchover to the most advanced upgraded replica in sync', () => {
    const done = upgradeView({ 1: newImage, 2: newImage }, { 1: newImage, 2: newImage });
    done.statuses.set(2, status(2, { image: newImage, position: '2000' }));
    const step = decide(done, { lastPrimaryPosition: 2000n });
    assert.deepEqual(step.kind === 'switchover' ? [step.ordinal, step.node] : [], [2, 'n2']);
  });

  it('u10: only the primary left and no upgraded replica in sync: wait', () => {
    const done = upgradeView({ 1: newImage, 2: newImage }, { 1: newImage, 2: newImage });
    const stale = decide(done, { now: t0 + 60_000 });
    assert.match(stale.kind === 'wait' ? stale.description : '', /none is in sync to take over yet/);
  });
});

describe('topology names images (topology.ts)', () => {
  it('a replica given its first role gets the instance’s image; running ones keep theirs, or none', () => {
    const base = view();
    base.instance = { ...base.instance, image: newImage };
    const { role: _role, epoch: _epoch, upstream: _upstream, ...placedOnly } = assignment(1).value;
    base.assignments.set(1, v(placedOnly));
    base.assignments.set(2, assignment(2, { epoch: 99, image: oldImage }));
    base.assignments.set(0, assignment(0, { epoch: 99 }));
    const changes = new Map(desiredAssignments(base).map((c) => [c.ordinal, c.next]));
    assert.equal(changes.get(1)?.image, newImage);
    assert.equal(changes.get(2)?.image, oldImage);
    // Made before upgrades: never given the image here (all at once); the roll does it.
    assert.equal(changes.get(0)?.role, 'primary');
    assert.equal(changes.get(0)?.image, undefined);
  });

  it('the old primary, rebuilt after a failover, comes back on the instance’s image', () => {
    const base = view({ primary: primaryAt(1, 200) });
    base.instance = { ...base.instance, image: newImage };
    base.assignments.set(0, assignment(0, { image: oldImage }));
    base.statuses.set(1, status(1, { role: 'primary', epoch: 200 }));
    const old = desiredAssignments(base).find((c) => c.ordinal === 0);
    assert.deepEqual([old?.next.role, old?.next.generation, old?.next.image], ['replica', 3, newImage]);
  });
});
