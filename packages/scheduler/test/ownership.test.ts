import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Keyspace, type SchedulerMemberRecord, type Versioned } from '@service-foundry/core';
import { Ownership, type SchedulerMode } from '../src/index.js';

const keys = new Keyspace('/own');

/** Members as the watched `schedulers/` prefix holds them; created in the order given. */
function members(names: string[]): { items: Map<string, Versioned<SchedulerMemberRecord>>; revision: string } {
  const items = new Map(
    names.map((name, i) => [
      keys.scheduler(name),
      {
        key: keys.scheduler(name),
        value: { name, mode: 'active-active' as const, startedAt: '' },
        modRevision: String(10 + i),
        createRevision: String(10 + i),
        lease: '1',
      },
    ]),
  );
  return { items, revision: '99' };
}

function shares(names: string[], mode: SchedulerMode, ids: string[]): Map<string, number> {
  const list = members(names);
  const counts = new Map<string, number>();
  for (const name of names) {
    const ownership = new Ownership(list, keys, name, mode);
    counts.set(name, ids.filter((id) => ownership.owns(id)).length);
  }
  return counts;
}

describe('Ownership', () => {
  const ids = Array.from({ length: 600 }, (_, i) => `k-${i}`);

  it('active-active: every instance has exactly one owner, and shares are even', () => {
    // Names differing only in a suffix: a weak hash once gave one member every instance.
    for (const root of ['test-4422e44d', 'test-93e9eab4', 'bench']) {
      const names = [`${root}-a`, `${root}-b`, `${root}-victim`];
      const counts = shares(names, 'active-active', ids);
      assert.equal(
        [...counts.values()].reduce((a, b) => a + b, 0),
        ids.length,
        'exactly one owner each',
      );
      for (const [name, count] of counts) assert.ok(count > ids.length / 5, `${name} owns ${count} of ${ids.length}`);
    }
  });

  it('active-active: a member leaving moves only its own share', () => {
    const before = members(['s1', 's2', 's3']);
    const after = members(['s1', 's2']);
    const s1Before = new Ownership(before, keys, 's1', 'active-active');
    const s1After = new Ownership(after, keys, 's1', 'active-active');
    for (const id of ids) if (s1Before.owns(id)) assert.ok(s1After.owns(id), `${id} stays with s1`);
  });

  it('leader: the eldest member owns everything, the others stand by', () => {
    const counts = shares(['old', 'mid', 'new'], 'leader', ids);
    assert.deepEqual(
      [...counts],
      [
        ['old', ids.length],
        ['mid', 0],
        ['new', 0],
      ],
    );
    assert.equal(new Ownership(members(['old', 'new']), keys, 'new', 'leader').ownsNothing(), true);
  });

  it('owns nothing until registered; slices the node ring among active members', () => {
    const list = members(['s1', 's2', 's3']);
    assert.equal(new Ownership(list, keys, 'stranger', 'active-active').owns('k-1'), false);
    assert.deepEqual(new Ownership(list, keys, 's2', 'active-active').slice(), { index: 1, of: 3 });
    assert.deepEqual(new Ownership(list, keys, 's2', 'leader').slice(), { index: 0, of: 1 });
  });
});
