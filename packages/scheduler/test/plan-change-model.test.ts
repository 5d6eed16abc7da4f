import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  AssignmentRecord,
  IoPolicy,
  PlacementRecord,
  PrimaryRecord,
  ReplicaStatus,
  Resources,
  Versioned,
} from '@service-foundry/core';
import { decideUpdate } from '../src/controller/plan-change.js';
import type { InstanceView } from '../src/controller/topology.js';
import { instanceRecord } from './helpers.js';

/**
 * The steps of a plan change (plan-change.ts), one test per row of its table. The primary
 * is replica 0 on n0 at epoch 100 unless a row says otherwise.
 */

const asyncIo: IoPolicy = { durability: 'async', localIo: 'fsync' };
const syncIo: IoPolicy = { durability: 'remote-fsync', localIo: 'fsync' };

function v<T>(value: T, modRevision = '100'): Versioned<T> {
  return { key: 'k', value, modRevision, createRevision: '1', lease: '0' };
}

function status(ordinal: number, extra: Partial<ReplicaStatus> = {}): Versioned<ReplicaStatus> {
  return v({
    instanceId: 'db',
    ordinal,
    node: `n${ordinal}`,
    state: 'running',
    message: 'ready',
    updatedAt: new Date().toISOString(),
    role: ordinal === 0 ? 'primary' : 'replica',
    epoch: 100,
    io: asyncIo,
    limits: { cpuMillis: 1, memoryMb: 1 },
    ...extra,
  });
}

const size: Resources = { cpuMillis: 1, memoryMb: 1, diskMb: 1 };

function assignment(ordinal: number, resources: Resources = size): Versioned<AssignmentRecord> {
  return v({ instanceId: 'db', ordinal, serviceName: 'postgres', planName: 'p', resources, desired: 'running' });
}

function placement(ordinal: number): PlacementRecord {
  return { instanceId: 'db', ordinal, node: `n${ordinal}`, placedAt: new Date().toISOString(), scheduler: 's' };
}

interface Shape {
  replicas: number;
  placed: number;
  running?: Versioned<ReplicaStatus>[];
  primaryOrdinal?: number | null;
  io?: IoPolicy;
  /** The resources each placed replica's assignment asks (the instance asks 1m CPU, 1 MB, 1 MB). */
  assigned?: Resources;
}

function view({ replicas, placed, running, primaryOrdinal = 0, io = asyncIo, assigned = size }: Shape): InstanceView {
  const instance = { ...instanceRecord('db', replicas, size), io };
  const statuses = running ?? Array.from({ length: placed }, (_, ordinal) => status(ordinal));
  const primary: PrimaryRecord | undefined =
    primaryOrdinal === null
      ? undefined
      : { instanceId: 'db', ordinal: primaryOrdinal, node: `n${primaryOrdinal}`, host: 'h', port: 1, electedAt: '' };
  return {
    instance,
    placements: Array.from({ length: placed }, (_, ordinal) => placement(ordinal)),
    assignments: new Map(Array.from({ length: placed }, (_, ordinal) => [ordinal, assignment(ordinal, assigned)])),
    statuses: new Map(statuses.map((s) => [s.value.ordinal, s])),
    primary: primary ? v(primary) : undefined,
    liveNodes: new Set(['n0', 'n1', 'n2']),
    replicated: true,
  };
}

describe('plan change steps (decideUpdate)', () => {
  it('an IO-only update has no plan step: settled, the IO check decides', () => {
    assert.deepEqual(decideUpdate(view({ replicas: 3, placed: 3 }), false, undefined), { kind: 'settled' });
  });

  it('no primary: waits (failover or election under way)', () => {
    const step = decideUpdate(view({ replicas: 3, placed: 1, primaryOrdinal: null }), true, syncIo);
    assert.equal(step.kind, 'wait');
    assert.match(step.kind === 'wait' ? step.description : '', /waiting for a primary/);
  });

  it('surplus replicas, the primary among them: waits for a switchover, removes nothing', () => {
    const step = decideUpdate(view({ replicas: 1, placed: 3, primaryOrdinal: 2 }), true, undefined);
    assert.equal(step.kind, 'wait');
    assert.match(step.kind === 'wait' ? step.description : '', /primary is replica 2.*--to 0/);
  });

  it('surplus replicas while the primary still waits for a standby: waits for async first', () => {
    const stillSync = [status(0, { io: syncIo }), status(1, { io: syncIo }), status(2, { io: syncIo })];
    const step = decideUpdate(view({ replicas: 1, placed: 3, running: stillSync }), true, undefined);
    assert.equal(step.kind, 'wait');
    assert.match(step.kind === 'wait' ? step.description : '', /applies durability async before its standbys/);
  });

  it('surplus replicas, the primary relaxed: removes every replica at or above the count', () => {
    const step = decideUpdate(view({ replicas: 1, placed: 3 }), true, undefined);
    assert.equal(step.kind, 'remove');
    assert.deepEqual(step.kind === 'remove' ? step.placements.map((p) => p.ordinal) : [], [1, 2]);
  });

  it('kept replicas whose assignment asks another size: resizes them in place (surplus ones are removed first)', () => {
    const old = { cpuMillis: 2, memoryMb: 2, diskMb: 1 };
    assert.deepEqual(decideUpdate(view({ replicas: 3, placed: 3, assigned: old }), true, undefined), {
      kind: 'resize',
      ordinals: [0, 1, 2],
      description: 'resizing replica(s) 0, 1, 2 in place to 1m CPU, 1 MB memory, 1 MB disk',
    });
    const shrinking = decideUpdate(view({ replicas: 1, placed: 3, assigned: old }), true, undefined);
    assert.equal(shrinking.kind, 'remove');
    const removedAlready = view({ replicas: 1, placed: 1, assigned: old });
    removedAlready.assignments.set(1, assignment(1, old));
    assert.deepEqual(decideUpdate(removedAlready, true, undefined), {
      kind: 'resize',
      ordinals: [0],
      description: 'resizing replica(s) 0 in place to 1m CPU, 1 MB memory, 1 MB disk',
    });
  });

  it('a running replica whose container does not report the new limits yet: waits, with its agent’s reason', () => {
    const refused = 'limits stay 2m CPU, 2 MB memory: the service uses 2 MB, more than 90% of the 1 MB asked';
    const pending = [status(0), status(1, { limits: { cpuMillis: 2, memoryMb: 2 }, message: refused }), status(2)];
    const step = decideUpdate(view({ replicas: 3, placed: 3, running: pending }), true, syncIo);
    assert.equal(step.kind, 'wait');
    assert.equal(
      step.kind === 'wait' ? step.description : '',
      `replica 1 on n1 does not run with 1m CPU, 1 MB memory yet: ${refused}`,
    );
    const { limits: _none, ...unreported } = status(0).value;
    const notYet = [v(unreported), status(1), status(2)];
    const quiet = decideUpdate(view({ replicas: 3, placed: 3, running: notYet }), true, undefined);
    assert.match(
      quiet.kind === 'wait' ? quiet.description : '',
      /replica 0 .* yet: its agent changes the container in place/,
    );
  });

  it('added replicas not all running in their role yet: waits, counting them', () => {
    const cloning = [status(0), status(1), status(2, { state: 'starting' })];
    const step = decideUpdate(view({ replicas: 3, placed: 3, running: cloning }), true, syncIo);
    assert.equal(step.kind, 'wait');
    assert.match(step.kind === 'wait' ? step.description : '', /2 of 3 replicas running/);
    const unplaced = decideUpdate(view({ replicas: 3, placed: 1 }), true, syncIo);
    assert.match(unplaced.kind === 'wait' ? unplaced.description : '', /1 of 3 replicas running/);
    const oldEpoch = [status(0), status(1), status(2, { epoch: 90 })];
    assert.equal(decideUpdate(view({ replicas: 3, placed: 3, running: oldEpoch }), true, syncIo).kind, 'wait');
  });

  it('all running, IO pending: applies the new plan’s IO', () => {
    assert.deepEqual(decideUpdate(view({ replicas: 3, placed: 3 }), true, syncIo), {
      kind: 'apply-io',
      io: syncIo,
      description: 'all 3 replicas running; applying durability remote-fsync, local_io fsync',
    });
  });

  it('all running, nothing pending: settled', () => {
    assert.deepEqual(decideUpdate(view({ replicas: 3, placed: 3, io: syncIo }), true, undefined), {
      kind: 'settled',
    });
    assert.deepEqual(decideUpdate(view({ replicas: 1, placed: 1 }), true, undefined), { kind: 'settled' });
  });
});
