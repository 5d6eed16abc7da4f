import { type IoPolicy, type ReplicaRole, replicaId } from '@service-foundry/core';
import type { ReplicaRef } from './container-spec.js';
import type { StatusUpdate } from './status-writer.js';

/**
 * What this agent knows is in force inside one container of a replicated service. The
 * reconciler compares assignments with it (never with the assignment it last saw), the
 * position reporter refreshes the observed parts, self-fencing reads `mayBePrimary`.
 */
export interface AppliedReplica {
  ref: ReplicaRef;
  containerId: string;
  serviceName: string;
  /** Data generation of the container's volume. */
  generation: number;
  /** Role as applied or last printed by the recipe's `role`; undefined until known. */
  role?: ReplicaRole;
  /**
   * The container was started as primary, is being or was promoted, or printed `primary`.
   * Sticky until the container is removed (a promotion cannot be taken back in place), so
   * self-fencing kills it and an assignment saying `replica` rebuilds it.
   */
  mayBePrimary: boolean;
  /** Epoch of the role in force: the primary key revision a primary was checked against, or the one a replica follows. */
  epoch?: number;
  /** Where a replica streams from; undefined when unknown (adopted): `follow` runs again. */
  upstream?: { host: string; port: number };
  io?: IoPolicy;
  peer?: { host: string; port: number };
  position?: string;
  positionAt?: string;
  /** When position and role were last written to the status (ms since the epoch). */
  observedWrittenAt?: number;
  /** Replication commands in progress; the position reporter stays away meanwhile. */
  busy: number;
  /** Why self-fencing killed the container, until it is started again or rebuilt. */
  fencedReason?: string;
}

export class AppliedReplicas {
  readonly #entries = new Map<string, AppliedReplica>();

  /** The entry of the replica, if it is about this container. */
  of(ref: ReplicaRef, containerId: string): AppliedReplica | undefined {
    const entry = this.#entries.get(replicaId(ref.instanceId, ref.ordinal));
    return entry?.containerId === containerId ? entry : undefined;
  }

  set(entry: AppliedReplica): AppliedReplica {
    this.#entries.set(replicaId(entry.ref.instanceId, entry.ref.ordinal), entry);
    return entry;
  }

  delete(ref: ReplicaRef): void {
    this.#entries.delete(replicaId(ref.instanceId, ref.ordinal));
  }

  all(): AppliedReplica[] {
    return [...this.#entries.values()];
  }
}

/** The status fields that report an applied replica. */
export function appliedStatusFields(
  entry: Pick<AppliedReplica, 'generation' | 'role' | 'epoch' | 'peer' | 'io' | 'position' | 'positionAt'>,
): Partial<StatusUpdate> {
  const fields: Partial<StatusUpdate> = { generation: entry.generation };
  if (entry.role !== undefined) fields.role = entry.role;
  if (entry.epoch !== undefined) fields.epoch = entry.epoch;
  if (entry.peer) fields.peer = { ...entry.peer };
  if (entry.io) fields.io = { ...entry.io };
  if (entry.position !== undefined) fields.position = entry.position;
  if (entry.positionAt !== undefined) fields.positionAt = entry.positionAt;
  return fields;
}
