import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultFilters,
  fitsCapacity,
  nodeAlive,
  nodeAntiAffinity,
  notFenced,
  requiredLabels,
  schedulable,
  zoneAntiAffinity,
} from '../src/index.js';
import { candidate, replica } from './placement-fixtures.js';

describe('filter nodeAlive', () => {
  it('keeps a node whose lease is live and rejects one whose lease is gone', () => {
    assert.equal(nodeAlive(replica(), candidate('n1')), undefined);
    assert.equal(nodeAlive(replica(), candidate('n1', { alive: false })), 'not responding (node lease gone)');
  });
});

describe('filter notFenced', () => {
  it('rejects nodes being fenced, fenced, or whose fencing failed', () => {
    assert.equal(notFenced(replica(), candidate('n1', { fence: 'fencing' })), 'being fenced');
    assert.equal(notFenced(replica(), candidate('n1', { fence: 'fenced' })), 'fenced');
    assert.match(notFenced(replica(), candidate('n1', { fence: 'failed' })) ?? '', /fencing failed/);
  });
  it('keeps unfenced nodes and nodes without a fence record', () => {
    assert.equal(notFenced(replica(), candidate('n1', { fence: 'unfenced' })), undefined);
    assert.equal(notFenced(replica(), candidate('n1')), undefined);
  });
});

describe('filter schedulable', () => {
  it('rejects cordoned and draining nodes, draining first', () => {
    assert.equal(schedulable(replica(), candidate('n1', { control: { cordoned: true } })), 'cordoned');
    assert.equal(schedulable(replica(), candidate('n1', { control: { cordoned: true, draining: true } })), 'draining');
  });
  it('keeps an uncordoned node', () => {
    assert.equal(schedulable(replica(), candidate('n1', { control: { cordoned: false } })), undefined);
    assert.equal(schedulable(replica(), candidate('n1')), undefined);
  });
});

describe('filter fitsCapacity', () => {
  it('keeps a node with exactly enough room', () => {
    assert.equal(
      fitsCapacity(replica(), candidate('n1', { used: { cpuMillis: 800, memoryMb: 700, diskMb: 900 } })),
      undefined,
    );
  });
  it('names every resource that is short, in units operators read', () => {
    const reason = fitsCapacity(
      replica({ resources: { cpuMillis: 2000, memoryMb: 4096, diskMb: 10 } }),
      candidate('n1', { capacity: { cpuMillis: 4000, memoryMb: 8192 }, used: { cpuMillis: 2500, memoryMb: 6000 } }),
    );
    assert.equal(reason, 'not enough free 2 cpu, 4 GiB memory');
  });
});

describe('filter nodeAntiAffinity', () => {
  it('rejects a node whose ledger holds a replica of the instance', () => {
    assert.equal(
      nodeAntiAffinity(replica(), candidate('n1', { holds: ['db1'] })),
      'already holds replica 0 of this instance',
    );
  });
  it('rejects a node a sibling was just decided for (not yet in the ledger)', () => {
    const r = replica({ siblings: [{ ordinal: 2, node: 'n1', zone: undefined }] });
    assert.equal(nodeAntiAffinity(r, candidate('n1')), 'already holds replica 2 of this instance');
  });
  it('keeps a node holding replicas of other instances', () => {
    assert.equal(nodeAntiAffinity(replica(), candidate('n1', { holds: ['db2'] })), undefined);
  });
});

describe('filter zoneAntiAffinity', () => {
  const r = replica({ siblings: [{ ordinal: 0, node: 'n9', zone: 'a' }] });
  it('rejects a node in a zone that already holds a replica of the instance', () => {
    assert.equal(
      zoneAntiAffinity(r, candidate('n1', { labels: { zone: 'a' } })),
      'zone a already holds replica 0 of this instance',
    );
  });
  it('keeps nodes of other zones and nodes without a zone', () => {
    assert.equal(zoneAntiAffinity(r, candidate('n1', { labels: { zone: 'b' } })), undefined);
    assert.equal(zoneAntiAffinity(r, candidate('n1')), undefined);
  });
  it('ignores siblings on nodes without a zone', () => {
    const unzoned = replica({ siblings: [{ ordinal: 0, node: 'n9', zone: undefined }] });
    assert.equal(zoneAntiAffinity(unzoned, candidate('n1', { labels: { zone: 'a' } })), undefined);
  });
});

describe('filter requiredLabels', () => {
  const r = replica({ requiredLabels: { disk: 'ssd', tier: 'db' } });
  it('keeps a node carrying every required label', () => {
    assert.equal(requiredLabels(r, candidate('n1', { labels: { disk: 'ssd', tier: 'db', zone: 'a' } })), undefined);
  });
  it('names the labels a node lacks or has with another value', () => {
    assert.equal(requiredLabels(r, candidate('n1', { labels: { disk: 'hdd' } })), 'lacks label disk=ssd, tier=db');
  });
  it('keeps every node when the plan requires nothing', () => {
    assert.equal(requiredLabels(replica(), candidate('n1')), undefined);
  });
});

describe('default filter order', () => {
  it('reports node-level states before per-replica rules', () => {
    const full = candidate('n1', { control: { cordoned: true }, used: { cpuMillis: 1000 } });
    const reason = defaultFilters.map((f) => f(replica(), full)).find((x) => x !== undefined);
    assert.equal(reason, 'cordoned');
  });
});
