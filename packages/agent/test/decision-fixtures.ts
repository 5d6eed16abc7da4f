import type { AssignmentRecord, ReplicaStatus } from '@service-foundry/core';
import {
  type AppliedView,
  newPassFacts,
  type ObservedContainer,
  type PassFacts,
  type ReplicaObservation,
} from '../src/replica-observation.js';

/** Fixtures for the pure decision tests: a replica `db/0` on node `n1`, observed at `t0`. */

export const t0 = Date.parse('2026-01-01T00:00:00Z');
export const node = 'n1';
export const address = '127.0.1.1';
/** The base name of the replica's container and first volume. */
export const baseName = 'sf-n1-db-0';
export const upstream = { host: '172.17.0.9', port: 5432 };
export const peer = { host: '172.17.0.2', port: 5432 };

export function assignment(extra: Partial<AssignmentRecord> = {}): AssignmentRecord {
  return {
    instanceId: 'db',
    ordinal: 0,
    serviceName: 'postgres',
    planName: 'ha-small',
    resources: { cpuMillis: 100, memoryMb: 64, diskMb: 16 },
    desired: 'running',
    ...extra,
  };
}

export function container(extra: Partial<ObservedContainer> = {}): ObservedContainer {
  return { id: 'c1', running: true, servicePort: 32001, peer, volume: baseName, ...extra };
}

/** An applied replica; a field given as `undefined` is left out (not known). */
export function applied(extra: { [K in keyof AppliedView]?: AppliedView[K] | undefined } = {}): AppliedView {
  const view: Record<string, unknown> = {
    generation: 0,
    role: 'replica',
    mayBePrimary: false,
    epoch: 5,
    upstream,
    peer,
  };
  for (const [field, value] of Object.entries(extra)) {
    if (value === undefined) delete view[field];
    else view[field] = value;
  }
  return view as unknown as AppliedView;
}

/** A status this agent wrote `agoMs` before t0. */
export function status(extra: Partial<ReplicaStatus> = {}, agoMs = 60_000): ReplicaStatus {
  return {
    instanceId: 'db',
    ordinal: 0,
    node,
    state: 'running',
    message: 'ready',
    containerId: 'c1',
    updatedAt: new Date(t0 - agoMs).toISOString(),
    ...extra,
  };
}

export type ObservationFields = Omit<Partial<ReplicaObservation>, 'pass'> & { pass?: Partial<PassFacts> };

export function observed(over: ObservationFields = {}): ReplicaObservation {
  const { pass, ...rest } = over;
  return {
    node,
    address,
    restartBackoffMs: 2500,
    selfFenced: false,
    ...rest,
    pass: { ...newPassFacts(), ...pass },
  };
}

export const refusedClaim = { ok: false, reason: 'stale epoch 5: primary/db is at epoch 9' } as const;
export const grantedClaim = { ok: true } as const;
