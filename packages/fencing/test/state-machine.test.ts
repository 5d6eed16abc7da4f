import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decideFence,
  decideUnfence,
  type StoredFenceRecord,
  stateAfterFencing,
  stateAfterUnfencing,
} from '../src/index.js';

const now = Date.parse('2030-01-01T00:00:00Z');
const grace = 30_000;

function record(fields: Partial<StoredFenceRecord>): StoredFenceRecord {
  return { node: 'n1', state: 'unfenced', reason: 'r', by: 'controller', at: new Date(now).toISOString(), ...fields };
}
const liveFencing = record({ state: 'fencing', attemptId: 'a1', deadline: new Date(now + 5000).toISOString() });
const staleFencing = record({ state: 'fencing', attemptId: 'a0', deadline: new Date(now - 1).toISOString() });

/** Every row of the table in fence-state-machine.ts and docs/fencing.md, as pure decisions. */
describe('fence/<node> state machine (decisions)', () => {
  it('fence requested', () => {
    assert.deepEqual(decideFence(undefined, now, grace), { kind: 'start' });
    assert.deepEqual(decideFence(record({ state: 'unfenced' }), now, grace), { kind: 'start' });
    assert.deepEqual(decideFence(record({ state: 'failed' }), now, grace), { kind: 'start' });
    assert.deepEqual(decideFence(record({ state: 'fenced', level: 2 }), now, grace), { kind: 'already-fenced' });
    assert.deepEqual(decideFence(liveFencing, now, grace), { kind: 'wait', attemptId: 'a1', untilMs: now + 5000 });
    assert.deepEqual(decideFence(staleFencing, now, grace), { kind: 'take-over', staleAttemptId: 'a0' });
  });

  it('a fencing record without a deadline goes stale `grace` after its time', () => {
    const old = record({ state: 'fencing', at: new Date(now - grace).toISOString() });
    assert.equal(decideFence(old, now, grace).kind, 'take-over');
    const young = record({ state: 'fencing', at: new Date(now - grace + 1).toISOString() });
    assert.equal(decideFence(young, now, grace).kind, 'wait');
  });

  it('levels ran', () => {
    assert.equal(stateAfterFencing(true), 'fenced');
    assert.equal(stateAfterFencing(false), 'failed');
  });

  it('unfence requested', () => {
    assert.deepEqual(decideUnfence(undefined, now, grace), { kind: 'nothing' });
    assert.deepEqual(decideUnfence(record({ state: 'unfenced' }), now, grace), { kind: 'nothing' });
    assert.deepEqual(decideUnfence(record({ state: 'fenced', level: 3 }), now, grace), { kind: 'power-on', level: 3 });
    assert.deepEqual(decideUnfence(record({ state: 'fenced' }), now, grace), { kind: 'release' });
    assert.deepEqual(decideUnfence(record({ state: 'failed' }), now, grace), { kind: 'release' });
    assert.deepEqual(decideUnfence(staleFencing, now, grace), { kind: 'release' });
    const refused = decideUnfence(liveFencing, now, grace);
    assert.equal(refused.kind, 'refuse');
  });

  it('on ran', () => {
    assert.equal(stateAfterUnfencing(true), 'unfenced');
    assert.equal(stateAfterUnfencing(false), 'fenced');
  });
});
