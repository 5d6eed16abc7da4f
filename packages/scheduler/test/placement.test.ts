import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeCandidate, PendingReplica } from '../src/index.js';
import { describeRejections, fitsCapacity, leastAllocated, rankNodes, spreadsReplicas } from '../src/index.js';

function candidate(
  name: string,
  used: { cpu: number; mem: number; disk: number },
  holds: string[] = [],
): NodeCandidate {
  const replicas = Object.fromEntries(
    holds.map((id, i) => [
      `${id}/${i}`,
      { instanceId: id, ordinal: i, resources: { cpuMillis: 0, memoryMb: 0, diskMb: 0 } },
    ]),
  );
  return {
    node: {
      name,
      address: '127.0.0.1',
      capacity: { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 },
      labels: {},
      startedAt: '',
    },
    allocation: { node: name, replicas },
    allocated: { cpuMillis: used.cpu, memoryMb: used.mem, diskMb: used.disk },
  };
}

const replica: PendingReplica = {
  instanceId: 'db1',
  ordinal: 0,
  resources: { cpuMillis: 200, memoryMb: 300, diskMb: 100 },
};

describe('fitsCapacity', () => {
  it('keeps a node with exactly enough room', () => {
    assert.equal(fitsCapacity(replica, candidate('n1', { cpu: 800, mem: 700, disk: 900 })), undefined);
  });
  it('names every resource that is short', () => {
    const reason = fitsCapacity(replica, candidate('n1', { cpu: 900, mem: 800, disk: 0 }));
    assert.equal(reason, 'not enough free 200m cpu, 300 MB memory');
  });
});

describe('spreadsReplicas', () => {
  it('rejects a node that already holds a replica of the instance', () => {
    assert.match(spreadsReplicas(replica, candidate('n1', { cpu: 0, mem: 0, disk: 0 }, ['db1'])) ?? '', /replica 0/);
  });
  it('keeps a node holding replicas of other instances', () => {
    assert.equal(spreadsReplicas(replica, candidate('n1', { cpu: 0, mem: 0, disk: 0 }, ['db2'])), undefined);
  });
});

describe('leastAllocated', () => {
  it('scores an emptier node higher', () => {
    const empty = leastAllocated(replica, candidate('a', { cpu: 0, mem: 0, disk: 0 }));
    const busy = leastAllocated(replica, candidate('b', { cpu: 500, mem: 500, disk: 500 }));
    assert.ok(empty > busy, `${empty} > ${busy}`);
    assert.ok(empty <= 100 && busy >= 0);
  });
});

describe('rankNodes', () => {
  it('orders feasible nodes by score, ties by name, and drops infeasible ones', () => {
    const result = rankNodes(replica, [
      candidate('c', { cpu: 100, mem: 100, disk: 100 }),
      candidate('b', { cpu: 0, mem: 0, disk: 0 }),
      candidate('a', { cpu: 0, mem: 0, disk: 0 }),
      candidate('full', { cpu: 1000, mem: 0, disk: 0 }),
      candidate('twin', { cpu: 0, mem: 0, disk: 0 }, ['db1']),
    ]);
    assert.deepEqual(
      result.ranked.map((c) => c.node.name),
      ['a', 'b', 'c'],
    );
    assert.equal(result.rejections.size, 2);
  });
  it('explains why nothing fits', () => {
    const result = rankNodes(replica, [
      candidate('x', { cpu: 1000, mem: 0, disk: 0 }),
      candidate('y', { cpu: 1000, mem: 0, disk: 0 }),
    ]);
    assert.equal(result.ranked.length, 0);
    assert.equal(describeRejections(result.rejections, 2), 'no node fits (2 nodes: not enough free 200m cpu)');
    assert.equal(describeRejections(new Map(), 0), 'no live nodes');
  });
});
