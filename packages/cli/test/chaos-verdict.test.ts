import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { longestGap, verdict, type WriteOutcomes } from '../src/chaos/verdict.js';

const base = (fields: Partial<WriteOutcomes>): WriteOutcomes => ({
  sent: [1, 2, 3, 4],
  acknowledged: [
    { id: 1, at: 1000 },
    { id: 2, at: 1100 },
    { id: 4, at: 4100 },
  ],
  refused: [],
  readBack: new Set([1, 2, 3, 4]),
  oldPrimaryAcceptedAt: [],
  promotedAt: undefined,
  faultAt: 1200,
  stoppedAt: 4150,
  ...fields,
});

describe('chaos verdict: one rule per row of the table in verdict.ts', () => {
  it('everything acknowledged is read back: the promise is kept, the unanswered write is in doubt', () => {
    const v = verdict(base({}), 'remote-fsync');
    assert.equal(v.promiseKept, true);
    assert.deepEqual(v.lost, []);
    assert.equal(v.acknowledged, 3);
    assert.equal(v.inDoubt, 1, 'write 3 was sent and never answered');
    assert.deepEqual(v.broken, []);
  });

  it('an acknowledged write missing breaks remote-fsync and received, not async', () => {
    const lost = base({ readBack: new Set([1, 3, 4]) });
    for (const durability of ['remote-fsync', 'received'] as const) {
      const v = verdict(lost, durability);
      assert.equal(v.promiseKept, false, durability);
      assert.deepEqual(v.lost, [2]);
      assert.match(v.broken[0] ?? '', /1 acknowledged write\(s\) lost under/);
    }
    const async = verdict(lost, 'async');
    assert.equal(async.promiseKept, true, 'async promises no replica copy');
    assert.deepEqual(async.lost, [2], 'but the loss is reported');
  });

  it('a write read back that was never sent breaks every promise; probe writes (negative ids) do not count', () => {
    assert.equal(verdict(base({ readBack: new Set([1, 2, 3, 4, 9]) }), 'async').promiseKept, false);
    const probe = verdict(base({ readBack: new Set([1, 2, 3, 4, -7]) }), 'remote-fsync');
    assert.equal(probe.promiseKept, true);
    assert.deepEqual(probe.unexpected, []);
  });

  it('a refused write found after all breaks the promise', () => {
    const v = verdict(base({ refused: [3] }), 'async');
    assert.equal(v.promiseKept, false);
    assert.deepEqual(v.refusedButPresent, [3]);
    assert.equal(v.inDoubt, 0);
  });

  it('the old primary accepting a direct write after the promotion is two primaries', () => {
    const after = verdict(base({ promotedAt: 3000, oldPrimaryAcceptedAt: [2500, 3200] }), 'async');
    assert.equal(after.oldPrimaryWritesAfterPromotion, 1);
    assert.equal(after.promiseKept, false);
    assert.match(after.broken.join(), /old primary accepted 1 direct write/);
    const before = verdict(base({ promotedAt: 3000, oldPrimaryAcceptedAt: [2500] }), 'async');
    assert.equal(before.promiseKept, true, 'writes before the promotion are the real primary at work');
    assert.equal(
      verdict(base({ oldPrimaryAcceptedAt: [2500] }), 'async').promiseKept,
      true,
      'no promotion, one primary',
    );
  });

  it('the longest gap is measured from the last acknowledgement before the fault', () => {
    assert.equal(longestGap(base({}).acknowledged, 1200, 4150), 3000);
    assert.equal(longestGap([{ at: 1300 }, { at: 1500 }], 1200, 1550), 200, 'no ack before the fault: from the fault');
  });

  it('writes that never came back before the workload stopped are the longest gap, not none', () => {
    assert.equal(longestGap([{ at: 1000 }, { at: 1100 }], 1200, 31_100), 30_000);
    assert.equal(longestGap([], 1200, 5200), 4000, 'nothing acknowledged at all: from the fault');
    assert.equal(verdict(base({ stoppedAt: 9100 }), 'async').longestGapMs, 5000, 'the stretch after the last ack');
  });
});
