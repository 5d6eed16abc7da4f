import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IoPolicy, PlacementRecord, PrimaryRecord, ReplicaStatus, Versioned } from '@service-foundry/core';
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
    ...extra,
  });
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
}

function view({ replicas, placed, running, primaryOrdinal = 0, io = asyncIo }: Shape): InstanceView {
  const instance = { ...instanceRecord('db', replicas, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }), io };
  const statuses = running ?? Array.from({ length: placed }, (_, ordinal) => status(ordinal));
  const primary: PrimaryRecord | undefined =
    primaryOrdinal === null
      ? undefined
      : { instanceId: 'db', ordinal: primaryOrdinal, node: `n${primaryOrdinal}`, host: 'h', port: 1, electedAt: '' };
  return {
    instance,
    placements: Array.from({ length: placed }, (_, ordinal) => placement(ordinal)),
    assignments: new Map(),
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
