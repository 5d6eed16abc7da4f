import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  binPack,
  defaultFilters,
  describeRejections,
  leastAllocated,
  pickNode,
  rankNodes,
  volumeLocality,
  weightedScorers,
  zoneSpread,
} from '../src/index.js';
import { candidate, replica } from './placement-fixtures.js';

const noContext = { zoneLoad: new Map<string, number>() };

describe('score leastAllocated', () => {
  it('scores an emptier node higher, within 0..100', () => {
    const empty = leastAllocated(replica(), candidate('a'), noContext);
    const busy = leastAllocated(
      replica(),
      candidate('b', { used: { cpuMillis: 500, memoryMb: 500, diskMb: 500 } }),
      noContext,
    );
    assert.ok(empty > busy, `${empty} > ${busy}`);
    assert.ok(empty <= 100 && busy >= 0);
    assert.equal(Math.round(empty), 80);
  });
});

describe('score binPack', () => {
  it('scores a fuller node higher: the mirror image of leastAllocated', () => {
    const empty = binPack(replica(), candidate('a'), noContext);
    const busy = binPack(
      replica(),
      candidate('b', { used: { cpuMillis: 500, memoryMb: 500, diskMb: 500 } }),
      noContext,
    );
    assert.ok(busy > empty);
    assert.equal(Math.round(empty + leastAllocated(replica(), candidate('a'), noContext)), 100);
  });
});

describe('score zoneSpread', () => {
  const context = {
    zoneLoad: new Map([
      ['a', 10],
      ['b', 5],
      ['c', 0],
    ]),
  };
  it('prefers the least loaded zone', () => {
    const a = zoneSpread(replica(), candidate('n1', { labels: { zone: 'a' } }), context);
    const b = zoneSpread(replica(), candidate('n2', { labels: { zone: 'b' } }), context);
    const c = zoneSpread(replica(), candidate('n3', { labels: { zone: 'c' } }), context);
    assert.deepEqual([a, b, c], [0, 50, 100]);
  });
  it('is neutral for nodes without a zone, and when nothing is placed yet', () => {
    assert.equal(zoneSpread(replica(), candidate('n1'), context), 50);
    assert.equal(zoneSpread(replica(), candidate('n1', { labels: { zone: 'a' } }), noContext), 100);
  });
});

describe('score volumeLocality', () => {
  it('prefers a node that held this replica before', () => {
    const r = replica({ previousNodes: ['old-1', 'old-2'] });
    assert.equal(volumeLocality(r, candidate('old-2'), noContext), 100);
    assert.equal(volumeLocality(r, candidate('new-1'), noContext), 0);
    assert.equal(volumeLocality(replica(), candidate('old-2'), noContext), 0);
  });
});

describe('weightedScorers', () => {
  it('drops scores weighted 0 and keeps the weights', () => {
    const scorers = weightedScorers({ leastAllocated: 1, binPack: 0, zoneSpread: 3, volumeLocality: 2 });
    assert.deepEqual(
      scorers.map((s) => s.weight),
      [1, 3, 2],
    );
  });
});

describe('rankNodes', () => {
  it('orders feasible nodes by weighted score, ties by name, and counts rejections by reason', () => {
    const result = rankNodes(replica(), [
      candidate('c', { used: { cpuMillis: 100, memoryMb: 100, diskMb: 100 } }),
      candidate('b'),
      candidate('a'),
      candidate('full', { used: { cpuMillis: 1000 } }),
      candidate('twin', { holds: ['db1'] }),
      candidate('off', { control: { cordoned: true } }),
    ]);
    assert.deepEqual(
      result.ranked.map((c) => c.node.name),
      ['a', 'b', 'c'],
    );
    assert.deepEqual([...result.rejections.values()], [1, 1, 1]);
  });
  it('lets volume locality outweigh a slightly emptier node', () => {
    const r = replica({ previousNodes: ['busy'] });
    const result = rankNodes(r, [
      candidate('empty'),
      candidate('busy', { used: { cpuMillis: 300, memoryMb: 300, diskMb: 300 } }),
    ]);
    assert.equal(result.ranked[0]?.node.name, 'busy');
  });
});

describe('pickNode', () => {
  const nodes = Array.from({ length: 10 }, (_, i) =>
    candidate(`n${i}`, { used: { cpuMillis: 10 * i, memoryMb: 10 * i, diskMb: 10 * i } }),
  );
  const options = { filters: defaultFilters, scorers: weightedScorers(), context: noContext, nodesToScore: 3 };
  it('scores only the first nodesToScore feasible nodes from its start', () => {
    const picked = pickNode(replica(), nodes, { ...options, start: 5 });
    assert.equal(picked.node?.node.name, 'n5', 'n5..n7 scored; n5 is the emptiest of them');
    const wrapped = pickNode(replica(), nodes, { ...options, start: 9 });
    assert.equal(wrapped.node?.node.name, 'n0', 'the scan wraps around');
  });
  it('looks at every node before saying none fits, and says why', () => {
    const full = nodes.map((n) => ({ ...n, allocated: { cpuMillis: 1000, memoryMb: 0, diskMb: 0 } }));
    const picked = pickNode(replica(), full, { ...options, start: 4 });
    assert.equal(picked.node, undefined);
    assert.ok(!picked.node);
    assert.equal(
      describeRejections(picked.rejections, full.length),
      'no node fits (10 nodes: not enough free 200m cpu)',
    );
  });
});

describe('describeRejections', () => {
  it('lists the commonest reason first', () => {
    const text = describeRejections(
      new Map([
        ['cordoned', 1],
        ['not enough free 4 GiB memory', 4],
      ]),
      5,
    );
    assert.equal(text, 'no node fits (4 nodes: not enough free 4 GiB memory; 1 node: cordoned)');
    assert.equal(describeRejections(new Map(), 0), 'no live nodes');
  });
});
