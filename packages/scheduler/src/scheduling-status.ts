import {
  type Etcd3,
  type EventLog,
  json,
  type Logger,
  type SchedulingStatusRecord,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import type { WaitingReplica } from './work-list.js';

/** Why a replica waits; `noRoom` when no live node has the free resources it needs. */
type PendingReason = WaitingReplica & { noRoom?: boolean };

function samePending(a: SchedulingStatusRecord, b: SchedulingStatusRecord): boolean {
  return a.desired === b.desired && a.placed === b.placed && JSON.stringify(a.pending) === JSON.stringify(b.pending);
}

/**
 * Keeps `scheduling/<id>` saying why an instance's replicas are not all placed, for the
 * instances this scheduler owns: written when the reasons change, deleted once every
 * replica sits on a live node. Also tells `sf events` once per change of reason. The
 * controller reads the `noRoom` flags to fail a provision that cannot fit anywhere.
 */
export class SchedulingStatusWriter {
  /** Last reason reported per replica, so that events say each thing once. */
  readonly #reported = new Map<string, string>();

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {}

  async sync(
    owned: Map<string, { desired: number; placed: number }>,
    reasons: readonly PendingReason[],
  ): Promise<void> {
    const keys = this.state.keys;
    const byInstance = new Map<string, PendingReason[]>();
    for (const r of reasons) {
      const list = byInstance.get(r.instanceId) ?? [];
      list.push(r);
      byInstance.set(r.instanceId, list);
    }
    const writes: Promise<unknown>[] = [];
    for (const [instanceId, counts] of owned) {
      const key = keys.schedulingStatus(instanceId);
      const current = this.state.schedulingStatuses.items.get(key);
      const pending = (byInstance.get(instanceId) ?? []).sort((a, b) => a.ordinal - b.ordinal);
      if (pending.length === 0) {
        // Delete only once fully placed: a replica not tried in this pass keeps its reason.
        if (current && counts.placed >= counts.desired) writes.push(this.#delete(current));
        continue;
      }
      const next: SchedulingStatusRecord = {
        instanceId,
        desired: counts.desired,
        placed: counts.placed,
        pending: pending.map(({ ordinal, reason, noRoom }) =>
          noRoom ? { ordinal, reason, noRoom } : { ordinal, reason },
        ),
        updatedAt: new Date().toISOString(),
      };
      if (!current || !samePending(current.value, next)) {
        const res = this.client
          .if(key, 'Mod', '==', current?.modRevision ?? '0')
          .then(this.client.put(key).value(json(next)))
          .commit();
        writes.push(res);
      }
      for (const { ordinal, reason } of pending) await this.#tell(instanceId, ordinal, reason);
    }
    await Promise.all(writes);
    // Forget what was said about instances this scheduler no longer works on.
    for (const replica of this.#reported.keys()) {
      if (!owned.has(replica.slice(0, replica.lastIndexOf('/')))) this.#reported.delete(replica);
    }
  }

  /** A replica got placed: the next reason about it is news again. */
  forget(instanceId: string, ordinal: number): void {
    this.#reported.delete(`${instanceId}/${ordinal}`);
  }

  async #tell(instanceId: string, ordinal: number, reason: string): Promise<void> {
    const replica = `${instanceId}/${ordinal}`;
    if (this.#reported.get(replica) === reason) return;
    this.#reported.set(replica, reason);
    this.log.info({ instanceId, ordinal, reason }, 'replica pending');
    await this.events.record('replica-pending', `replica ${ordinal} pending: ${reason}`, { instanceId });
  }

  async #delete(current: Versioned<SchedulingStatusRecord>): Promise<void> {
    await this.client
      .if(current.key, 'Mod', '==', current.modRevision)
      .then(this.client.delete().key(current.key))
      .commit();
  }
}
