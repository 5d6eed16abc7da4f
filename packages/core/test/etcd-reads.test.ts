import assert from 'node:assert/strict';
import { it } from 'node:test';
import { eldestFirst, type Versioned } from '@service-foundry/core';

const record = (name: string, createRevision: string): Versioned<{ name: string }> => ({
  key: `/schedulers/${name}`,
  value: { name },
  modRevision: createRevision,
  createRevision,
  lease: '0',
});

it('eldestFirst orders by create revision as numbers, not as strings (9 before 10 before 100)', () => {
  const records = [record('c', '100'), record('a', '9'), record('b', '10'), record('d', '9223372036854775806')];
  assert.deepEqual(
    eldestFirst(records).map((r) => r.value.name),
    ['a', 'b', 'c', 'd'],
  );
  assert.deepEqual(
    records.map((r) => r.value.name),
    ['c', 'a', 'b', 'd'],
    'the input is left as it was',
  );
});
