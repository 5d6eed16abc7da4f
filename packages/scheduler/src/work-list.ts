import type { InstanceRecord, NodeFenceRecord, PlacementRecord, Versioned } from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import type { Ownership } from './ownership.js';

/** A replica that needs a node: never placed, or placed on a node that is gone and fenced. */
export interface Slot {
  instance: Versioned<InstanceRecord>;
  ordinal: number;
  /** The placement to move, when the replica's node is gone and confirmed fenced. */
  moveFrom?: Versioned<PlacementRecord>;
}

/** A replica that cannot be worked on yet, and why (shown by `sf service`). */
export interface WaitingReplica {
  instanceId: string;
  ordinal: number;
  reason: string;
}

export interface WorkList {
  /** Per instance (oldest instance first), its slots in ordinal order. */
  slots: Slot[][];
  waiting: WaitingReplica[];
  /**
   * Owned, live instances that have work, wait, or have a scheduling status, with how
   * many of their replicas sit on live nodes.
   */
  owned: Map<string, { desired: number; placed: number }>;
}

/** Oldest first: creation time, then id (FIFO, and the same order in every scheduler). */
function olderFirst(a: Versioned<InstanceRecord>, b: Versioned<InstanceRecord>): number {
  const x = a.value.createdAt;
  const y = b.value.createdAt;
  if (x !== y) return x < y ? -1 : 1;
  return a.value.id < b.value.id ? -1 : a.value.id > b.value.id ? 1 : 0;
}

/** Why a replica on a node that stopped answering is not moved (yet). */
export function waitingForFence(node: string, ordinal: number, fence: NodeFenceRecord | undefined): string {
  if (fence?.state === 'failed') {
    return `node ${node} is not responding and fencing it failed; replica ${ordinal} stays until the node is fenced or comes back`;
  }
  return `node ${node} is not responding; waiting for fencing to confirm before moving replica ${ordinal}`;
}

/**
 * Desired vs actual for the instances this scheduler owns. A replica on a node whose
 * lease is gone is moved only once the node is confirmed fenced: until then the node may
 * still run it and write to its volume, and a second copy would be a split brain.
 */
export function collectWork(state: ClusterState, ownership: Ownership, only?: Iterable<string>): WorkList {
  const keys = state.keys;
  const slots: Slot[][] = [];
  const waiting: WaitingReplica[] = [];
  const owned = new Map<string, { desired: number; placed: number }>();
  if (!ownership.registered()) return { slots, waiting, owned };
  // Prefixes joined by hand: ids and node names in these records were checked when written.
  const placementsPrefix = keys.placements();
  const nodesPrefix = keys.nodes();
  const statusPrefix = keys.schedulingStatuses();
  const instancesPrefix = keys.instances();
  const instances = only
    ? [...only].flatMap((id) => state.instances.items.get(`${instancesPrefix}${id}`) ?? [])
    : state.instances.items.values();
  for (const instance of instances) {
    const { id, replicas, phase } = instance.value;
    if (phase === 'deprovisioning' || phase === 'failed' || !ownership.owns(id)) continue;
    const mine: Slot[] = [];
    let placed = 0;
    let waits = false;
    const prefix = `${placementsPrefix}${id}/`;
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const placement = state.placements.items.get(`${prefix}${ordinal}`);
      if (!placement) {
        mine.push({ instance, ordinal });
        continue;
      }
      const node = placement.value.node;
      if (state.nodes.items.has(`${nodesPrefix}${node}`)) {
        placed++;
        continue;
      }
      const fence = state.fences.items.get(keys.fence(node))?.value;
      if (fence?.state === 'fenced') mine.push({ instance, ordinal, moveFrom: placement });
      else {
        waiting.push({ instanceId: id, ordinal, reason: waitingForFence(node, ordinal, fence) });
        waits = true;
      }
    }
    // Counts only where a scheduling status may need writing or deleting: at thousands of
    // settled instances, a map of all of them per pass would cost more than it tells.
    if (mine.length || waits || state.schedulingStatuses.items.has(`${statusPrefix}${id}`)) {
      owned.set(id, { desired: replicas, placed });
    }
    if (mine.length) slots.push(mine);
  }
  // Oldest instance first (FIFO); only the instances with work are sorted.
  slots.sort((a, b) => olderFirst((a[0] as Slot).instance, (b[0] as Slot).instance));
  return { slots, waiting, owned };
}
