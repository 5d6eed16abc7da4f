import {
  type Etcd3,
  EtcdMutexSession,
  type EventLog,
  type InstanceRecord,
  type Logger,
  sumAllocated,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import { describeRejections, rankNodes } from './placement/rank.js';
import type { NodeCandidate, PendingReplica } from './placement/types.js';
import { reserve } from './reserve.js';

/** How many of the best nodes a replica tries in one pass before waiting for the next. */
const candidatesPerPass = 3;

export interface SchedulerPassResult {
  placed: number;
  pending: number;
}

/**
 * Places unplaced replicas: filter → score → reserve (one etcd transaction under the
 * node's mutex) → bind (the assignment the node's agent watches). Any number of
 * schedulers may run at once; they coordinate only through etcd.
 */
export class Scheduler {
  readonly #mutexes: EtcdMutexSession;
  /** Last reason reported per pending replica, so that events say each thing once. */
  readonly #reported = new Map<string, string>();

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly name: string,
    lockTtlSeconds: number,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {
    this.#mutexes = new EtcdMutexSession(client, name, lockTtlSeconds);
  }

  async close(): Promise<void> {
    await this.#mutexes.close();
  }

  pendingReplicas(): Array<PendingReplica & { instance: Versioned<InstanceRecord> }> {
    const pending: Array<PendingReplica & { instance: Versioned<InstanceRecord> }> = [];
    const instances = [...this.state.instances.items.values()].sort((a, b) =>
      a.value.createdAt.localeCompare(b.value.createdAt),
    );
    for (const instance of instances) {
      const { phase, replicas, id, resources } = instance.value;
      if (phase === 'deprovisioning' || phase === 'failed') continue;
      for (let ordinal = 0; ordinal < replicas; ordinal++) {
        if (this.state.placements.items.has(this.state.keys.placement(id, ordinal))) continue;
        pending.push({ instanceId: id, ordinal, resources, instance });
      }
    }
    return pending;
  }

  #candidates(): NodeCandidate[] {
    const out: NodeCandidate[] = [];
    for (const { value: node } of this.state.nodes.items.values()) {
      const allocation = this.state.allocations.items.get(this.state.keys.allocation(node.name))?.value ?? {
        node: node.name,
        replicas: {},
      };
      out.push({ node, allocation, allocated: sumAllocated(allocation.replicas) });
    }
    return out;
  }

  async pass(): Promise<SchedulerPassResult> {
    const pending = this.pendingReplicas();
    let placed = 0;
    for (const replica of pending) {
      const { ranked, rejections } = rankNodes(replica, this.#candidates());
      const replicaKey = `${replica.instanceId}/${replica.ordinal}`;
      if (ranked.length === 0) {
        const reason = describeRejections(rejections, this.state.nodes.items.size);
        if (this.#reported.get(replicaKey) !== reason) {
          this.#reported.set(replicaKey, reason);
          this.log.info({ instanceId: replica.instanceId, ordinal: replica.ordinal, reason }, 'replica pending');
          await this.events.record('replica-pending', `replica ${replica.ordinal} pending: ${reason}`, {
            instanceId: replica.instanceId,
          });
        }
        continue;
      }
      for (const candidate of ranked.slice(0, candidatesPerPass)) {
        if (await this.#tryPlace(replica, candidate)) {
          placed++;
          this.#reported.delete(replicaKey);
          break;
        }
      }
    }
    return { placed, pending: pending.length - placed };
  }

  async #tryPlace(
    replica: PendingReplica & { instance: Versioned<InstanceRecord> },
    candidate: NodeCandidate,
  ): Promise<boolean> {
    const keys = this.state.keys;
    const node = candidate.node.name;
    const lockKey = keys.nodeLock(node);
    if (!(await this.#mutexes.tryAcquire(lockKey))) return false;
    try {
      const allocation = this.state.allocations.items.get(keys.allocation(node));
      const result = await reserve(this.client, keys, {
        instanceId: replica.instanceId,
        ordinal: replica.ordinal,
        resources: replica.resources,
        serviceName: replica.instance.value.serviceName,
        planName: replica.instance.value.planName,
        instanceRevision: replica.instance.modRevision,
        node,
        allocation,
        scheduler: this.name,
      });
      if (!result.committed || !result.allocation) return false;
      // Apply our own write to the local copy now, so the next replica in this pass sees it
      // (the watch delivers the same value a moment later).
      this.state.allocations.items.set(result.allocation.key, result.allocation);
      this.state.placements.items.set(keys.placement(replica.instanceId, replica.ordinal), {
        key: keys.placement(replica.instanceId, replica.ordinal),
        value: {
          instanceId: replica.instanceId,
          ordinal: replica.ordinal,
          node,
          placedAt: new Date().toISOString(),
          scheduler: this.name,
        },
        modRevision: result.allocation.modRevision,
        createRevision: result.allocation.modRevision,
        lease: '0',
      });
      this.log.info({ instanceId: replica.instanceId, ordinal: replica.ordinal, node }, 'replica placed');
      await this.events.record('replica-placed', `replica ${replica.ordinal} placed on ${node}`, {
        instanceId: replica.instanceId,
        node,
      });
      return true;
    } finally {
      await this.#mutexes.release(lockKey).catch(() => undefined);
    }
  }
}
