import type { AssignmentRecord, PlacementRecord, PrimaryRecord, ReplicaStatus, Versioned } from '@service-foundry/core';
import type { InstanceView } from '../src/controller/topology.js';
import { instanceRecord } from './helpers.js';

/**
 * An instance view for the controller's pure state machines (switchover, upgrade): replica
 * 0 on n0 is primary at epoch 100, replicas 1 and 2 on n1, n2 follow it.
 */

export const t0 = Date.parse('2026-01-01T00:00:00Z');
export const iso = (ms: number) => new Date(ms).toISOString();

export function v<T>(value: T, modRevision = '10'): Versioned<T> {
  return { key: 'k', value, modRevision, createRevision: '1', lease: '0' };
}

export function assignment(ordinal: number, extra: Partial<AssignmentRecord> = {}): Versioned<AssignmentRecord> {
  return v({
    instanceId: 'db',
    ordinal,
    serviceName: 'postgres',
    planName: 'ha-small',
    resources: { cpuMillis: 1, memoryMb: 1, diskMb: 1 },
    desired: 'running',
    role: ordinal === 0 ? 'primary' : 'replica',
    epoch: 100,
    generation: 2,
    ...(ordinal === 0 ? {} : { upstream: { host: '172.17.0.2', port: 5432 } }),
    ...extra,
  });
}

/** A replica's status; fields given as `undefined` are left out (as an agent leaves them out). */
export function status(
  ordinal: number,
  extra: { [K in keyof ReplicaStatus]?: ReplicaStatus[K] | undefined } = {},
): Versioned<ReplicaStatus> {
  const value: Record<string, unknown> = {
    instanceId: 'db',
    ordinal,
    node: `n${ordinal}`,
    state: 'running',
    host: '127.0.0.1',
    port: 5000 + ordinal,
    message: 'ready',
    updatedAt: iso(t0),
    role: ordinal === 0 ? 'primary' : 'replica',
    epoch: 100,
    peer: { host: `172.17.0.${ordinal + 2}`, port: 5432 },
    position: '1000',
    positionAt: iso(t0 - 500),
    ...extra,
  };
  for (const [field, given] of Object.entries(value)) if (given === undefined) delete value[field];
  return v(value as unknown as ReplicaStatus);
}

export const primaryAt = (ordinal: number, epoch: number): Versioned<PrimaryRecord> =>
  v(
    { instanceId: 'db', ordinal, node: `n${ordinal}`, host: '127.0.0.1', port: 5000 + ordinal, electedAt: '' },
    String(epoch),
  );

export function view(over: Partial<InstanceView> = {}, statuses: Array<Versioned<ReplicaStatus>> = []): InstanceView {
  const placements: PlacementRecord[] = [0, 1, 2].map((ordinal) => ({
    instanceId: 'db',
    ordinal,
    node: `n${ordinal}`,
    placedAt: '',
    scheduler: 's',
  }));
  const all = new Map([0, 1, 2].map((o) => [o, status(o)]));
  for (const s of statuses) all.set(s.value.ordinal, s);
  return {
    instance: {
      ...instanceRecord('db', 3, { cpuMillis: 1, memoryMb: 1, diskMb: 1 }),
      planName: 'ha-small',
      phase: 'ready',
      io: { durability: 'remote-fsync', localIo: 'fsync' },
      failover: { fencing: 'required', fencingTimeoutSeconds: 60, maxLagBytes: 4096 },
    },
    placements,
    assignments: new Map([0, 1, 2].map((o) => [o, assignment(o)])),
    statuses: all,
    primary: primaryAt(0, 100),
    liveNodes: new Set(['n0', 'n1', 'n2']),
    replicated: true,
    ...over,
  };
}
