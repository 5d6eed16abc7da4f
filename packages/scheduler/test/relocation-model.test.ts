import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  AssignmentRecord,
  NodeRecord,
  RelocationRecord,
  ReplicaStatus,
  TransferFigures,
  TransferStatusRecord,
  Versioned,
} from '@service-foundry/core';
import {
  copyStartDeadlineMs,
  decideRelocation,
  type RelocationView,
  stopDeadlineMs,
} from '../src/controller/relocation.js';
import { chooseRelocationTarget, type TargetCandidates } from '../src/controller/relocation-target.js';
import { instanceRecord } from './helpers.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');
const figures: TransferFigures = {
  mode: 'full',
  bytes: 100,
  wireBytes: 120,
  files: 3,
  deleted: 0,
  durationMs: 10,
  mbPerSecond: 10,
};

function v<T>(value: T, modRevision = '10'): Versioned<T> {
  return { key: 'k', value, modRevision, createRevision: '1', lease: '0' };
}

function assignment(extra: Partial<AssignmentRecord> = {}): Versioned<AssignmentRecord> {
  return v({
    instanceId: 'db',
    ordinal: 0,
    serviceName: 'postgres',
    planName: 'small',
    resources: { cpuMillis: 1, memoryMb: 1, diskMb: 1 },
    desired: 'running',
    ...extra,
  });
}

function transfer(round: number, state: TransferStatusRecord['state'], extra: Partial<TransferStatusRecord> = {}) {
  return {
    instanceId: 'db',
    ordinal: 0,
    node: 'b',
    from: { node: 'a', volume: 'replica.db.0' },
    round,
    state,
    message: state,
    updatedAt: new Date(t0).toISOString(),
    ...(state === 'copied' ? { result: figures } : {}),
    ...extra,
  } satisfies TransferStatusRecord;
}

function status(node: string, state: ReplicaStatus['state'], extra: Partial<ReplicaStatus> = {}): ReplicaStatus {
  return { instanceId: 'db', ordinal: 0, node, state, message: '', updatedAt: '', ...extra };
}

function view(phase: RelocationRecord['phase'], over: Partial<RelocationView> = {}, ageMs = 0): RelocationView {
  const relocation: RelocationRecord = {
    instanceId: 'db',
    ordinal: 0,
    from: 'a',
    to: 'b',
    keepSource: false,
    phase,
    message: '',
    reason: 'operator',
    requestedBy: 'op',
    requestedAt: new Date(t0).toISOString(),
    updatedAt: new Date(t0).toISOString(),
  };
  return {
    relocation: v(relocation),
    instance: { ...instanceRecord('db', 1, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }), phase: 'ready' },
    placement: v({ instanceId: 'db', ordinal: 0, node: 'a', placedAt: '', scheduler: 's' }),
    source: assignment(),
    target: assignment({ seed: { from: { node: 'a', volume: 'replica.db.0' }, round: 1 } }),
    status: status('a', 'running', { host: '127.0.1.1', port: 5000 }),
    transfer: undefined,
    primary: v({ instanceId: 'db', ordinal: 0, node: 'a', host: '', port: 0, electedAt: '' }, '50'),
    route: undefined,
    liveNodes: new Set(['a', 'b']),
    now: t0 + ageMs,
    ...over,
  };
}

const seedRound = (round: number) => assignment({ seed: { from: { node: 'a', volume: 'replica.db.0' }, round } });

describe('relocation state machine (controller/relocation.ts), row by row', () => {
  it('finished relocations need nothing', () => {
    assert.equal(decideRelocation(view('done')).kind, 'none');
    assert.equal(decideRelocation(view('failed')).kind, 'none');
  });

  it('requested: reserve, unless the instance or the placement say otherwise', () => {
    assert.equal(decideRelocation(view('requested')).kind, 'reserve');
    assert.deepEqual(decideRelocation(view('requested', { instance: undefined })), {
      kind: 'abort',
      reason: 'the instance was deleted',
    });
    const provisioning = {
      ...instanceRecord('db', 1, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }),
      phase: 'provisioning' as const,
    };
    assert.deepEqual(decideRelocation(view('requested', { instance: provisioning })), {
      kind: 'abort',
      reason: 'the instance is provisioning',
    });
    const moved = v({ instanceId: 'db', ordinal: 0, node: 'c', placedAt: '', scheduler: 's' });
    assert.match(JSON.stringify(decideRelocation(view('requested', { placement: moved }))), /no longer placed on a/);
  });

  it('copying: waits for round 1, then asks for round 2, then stops the source', () => {
    assert.equal(decideRelocation(view('copying', { transfer: transfer(1, 'copying') })).kind, 'wait');
    assert.deepEqual(decideRelocation(view('copying', { transfer: transfer(1, 'copied') })), {
      kind: 'next-round',
      precopy: figures,
    });
    const round2 = { target: seedRound(2), transfer: transfer(2, 'copied') };
    assert.deepEqual(decideRelocation(view('copying', round2)), { kind: 'stop-source', catchUp: figures });
    // A copied record of an older round is not taken for the current one.
    assert.equal(
      decideRelocation(view('copying', { target: seedRound(2), transfer: transfer(1, 'copied') })).kind,
      'wait',
    );
  });

  it('copying or final: aborts when a node is lost, the target assignment is gone, or the copy failed for good', () => {
    assert.match(
      JSON.stringify(decideRelocation(view('copying', { liveNodes: new Set(['b']) }))),
      /source node a stopped answering/,
    );
    assert.match(
      JSON.stringify(decideRelocation(view('final', { liveNodes: new Set(['a']) }))),
      /target node b stopped answering/,
    );
    assert.match(JSON.stringify(decideRelocation(view('copying', { target: undefined }))), /assignment on b is gone/);
    const retrying = transfer(1, 'failed', { willRetry: true });
    assert.equal(decideRelocation(view('copying', { transfer: retrying })).kind, 'wait');
    const failed = transfer(1, 'failed', { willRetry: false, message: 'disk full' });
    assert.match(
      JSON.stringify(decideRelocation(view('copying', { transfer: failed }))),
      /copying to b failed: disk full/,
    );
  });

  it('copying: aborts when the target agent never reports a copy', () => {
    assert.equal(decideRelocation(view('copying', {}, copyStartDeadlineMs - 1)).kind, 'wait');
    assert.match(
      JSON.stringify(decideRelocation(view('copying', {}, copyStartDeadlineMs + 1))),
      /did not start copying/,
    );
  });

  it('stopping: the final round only once the source reports stopped; aborts after the deadline', () => {
    assert.equal(decideRelocation(view('stopping')).kind, 'wait');
    assert.equal(decideRelocation(view('stopping', { status: status('a', 'stopped') })).kind, 'final-round');
    // A status of another node saying stopped is not the source's.
    assert.equal(decideRelocation(view('stopping', { status: status('b', 'stopped') })).kind, 'wait');
    assert.match(JSON.stringify(decideRelocation(view('stopping', {}, stopDeadlineMs + 1))), /did not stop on a/);
  });

  it('final: switches once round 3 is copied', () => {
    const done = { target: seedRound(3), transfer: transfer(3, 'copied') };
    assert.deepEqual(decideRelocation(view('final', done)), { kind: 'switch', final: figures });
    assert.equal(
      decideRelocation(view('final', { target: seedRound(3), transfer: transfer(2, 'copied') })).kind,
      'wait',
    );
  });

  it('switching: never goes back; done when the target runs and the route names it at the new epoch', () => {
    const moved = { placement: v({ instanceId: 'db', ordinal: 0, node: 'b', placedAt: '', scheduler: 's' }) };
    const primary = v({ instanceId: 'db', ordinal: 0, node: 'b', host: '', port: 0, electedAt: '' }, '60');
    const running = status('b', 'running', { host: '127.0.1.2', port: 6000 });
    const base = { ...moved, primary, liveNodes: new Set<string>() };
    assert.equal(decideRelocation(view('switching', base)).kind, 'wait', 'nothing runs yet; no abort either');
    assert.match(
      JSON.stringify(decideRelocation(view('switching', { ...base, instance: undefined }))),
      /deleted while it started on the target/,
    );
    assert.equal(decideRelocation(view('switching', { ...base, status: running })).kind, 'wait', 'no route yet');
    const stale = {
      instanceId: 'db',
      protocol: 'tcp' as const,
      port: 1,
      target: { host: '127.0.1.1', port: 5000 },
      epoch: 50,
    };
    assert.equal(decideRelocation(view('switching', { ...base, status: running, route: stale })).kind, 'wait');
    const route = { ...stale, target: { host: '127.0.1.2', port: 6000 }, epoch: 60 };
    assert.equal(decideRelocation(view('switching', { ...base, status: running, route })).kind, 'done');
    // A replica that is not the primary is done once it runs.
    const other = v({ instanceId: 'db', ordinal: 1, node: 'c', host: '', port: 0, electedAt: '' });
    assert.equal(decideRelocation(view('switching', { ...base, status: running, primary: other })).kind, 'done');
  });
});

describe('relocation target choice', () => {
  const node = (name: string, extra: Partial<NodeRecord> = {}): NodeRecord => ({
    name,
    address: '127.0.0.1',
    capacity: { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 },
    labels: {},
    startedAt: '',
    volumeUrl: 'http://127.0.0.1:1',
    ...extra,
  });
  const input = (over: Partial<TargetCandidates> = {}): TargetCandidates => ({
    instanceId: 'db',
    ordinal: 0,
    from: 'a',
    requested: undefined,
    resources: { cpuMillis: 100, memoryMb: 100, diskMb: 100 },
    nodes: [node('a'), node('b'), node('c')],
    allocations: new Map(),
    controls: new Map(),
    fences: new Map(),
    siblings: new Set(),
    ...over,
  });

  it('takes the node with the most headroom, never the source, ties by name', () => {
    assert.deepEqual(chooseRelocationTarget(input()), { node: 'b' });
    const busyB = new Map([
      [
        'b',
        {
          node: 'b',
          replicas: { 'x/0': { instanceId: 'x', ordinal: 0, resources: { cpuMillis: 500, memoryMb: 1, diskMb: 1 } } },
        },
      ],
    ]);
    assert.deepEqual(chooseRelocationTarget(input({ allocations: busyB })), { node: 'c' });
  });

  it('filters out fenced, cordoned, draining, full, sibling and volume-less nodes, saying why', () => {
    const choice = chooseRelocationTarget(
      input({
        nodes: [
          node('a'),
          node('b', { volumeUrl: undefined as unknown as string }),
          node('c'),
          node('d'),
          node('e'),
          node('f', { capacity: { cpuMillis: 50, memoryMb: 1000, diskMb: 1000 } }),
          node('g'),
        ],
        fences: new Map([['c', { node: 'c', state: 'fenced', reason: '', by: '', at: '' }]]),
        controls: new Map([
          ['d', { node: 'd', cordoned: true, draining: false, reason: '', updatedAt: '', by: '' }],
          ['e', { node: 'e', cordoned: true, draining: true, reason: '', updatedAt: '', by: '' }],
        ]),
        siblings: new Set(['g']),
      }),
    );
    assert.ok('problems' in choice);
    assert.deepEqual(choice.problems, [
      'a: it is the source',
      'b: it serves no volumes (agent config "volumes")',
      'c: it is fenced',
      'd: it is cordoned',
      'e: it is draining',
      'f: not enough CPU',
      'g: it holds another replica of the instance',
    ]);
  });

  it("checks the operator's node like any other", () => {
    assert.deepEqual(chooseRelocationTarget(input({ requested: 'c' })), { node: 'c' });
    assert.deepEqual(chooseRelocationTarget(input({ requested: 'a' })), { problems: ['node a: it is the source'] });
    assert.deepEqual(chooseRelocationTarget(input({ requested: 'z' })), { problems: ['node z is not alive'] });
  });
});
