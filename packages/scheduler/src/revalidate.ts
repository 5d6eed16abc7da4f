import type { NodeAllocation } from '@service-foundry/core';
import { nodeLocalFilters } from './placement/filters/index.js';
import { candidateOf, withReplica } from './placement/node-view.js';
import { rejectionOf } from './placement/rank.js';
import type { NodeCandidate } from './placement/types.js';
import type { PlannedReplica } from './plan-wave.js';
import type { ReplicaToCommit } from './transactions/commit-placements.js';
import type { LockedNode } from './transactions/lock-nodes.js';

export interface Revalidated {
  keep: ReplicaToCommit[];
  /** Back to the queue, with why (for logs): another wave decides them again. */
  drop: Array<{ planned: PlannedReplica; reason: string }>;
}

export interface RevalidateOptions {
  /** Longest list (compares or writes) one node's transaction may have. */
  maxOps: number;
  /** How many operations a node transaction needs for these replicas. */
  opsFor: (replicas: readonly ReplicaToCommit[]) => number;
  /** Instance ids whose scheduling status should go away with this commit. */
  clearsStatus: (planned: PlannedReplica) => boolean;
}

/**
 * Re-judges a node's planned replicas against what etcd returned with the node's lock:
 * the decision was made on a watched copy that may lag. Node-local filters only; rules
 * that span nodes (zones) are guarded by the commit's comparisons of sibling placements.
 * Moves are kept only if the old node is still gone and fenced and the placement still
 * points at it, exactly as the decision saw it.
 */
export function revalidate(
  locked: LockedNode,
  planned: readonly PlannedReplica[],
  options: RevalidateOptions,
): Revalidated {
  const keep: ReplicaToCommit[] = [];
  const drop: Revalidated['drop'] = [];
  if (!locked.record) {
    for (const p of planned) drop.push({ planned: p, reason: `node ${locked.node} is gone` });
    return { keep, drop };
  }
  const allocation: NodeAllocation = locked.allocation?.value ?? { node: locked.node, replicas: {} };
  let candidate: NodeCandidate = candidateOf(locked.record.value, allocation, {
    control: locked.control?.value,
    fence: locked.fence?.value,
  });
  for (const p of planned) {
    const reason = rejectionOf(p.replica, candidate, nodeLocalFilters);
    if (reason) {
      drop.push({ planned: p, reason });
      continue;
    }
    const instance = p.slot.instance;
    const commit: ReplicaToCommit = {
      instanceId: p.replica.instanceId,
      ordinal: p.replica.ordinal,
      resources: p.replica.resources,
      serviceName: instance.value.serviceName,
      planName: instance.value.planName,
      ...(instance.value.image !== undefined ? { image: instance.value.image } : {}),
      instanceRevision: instance.modRevision,
      placementRevisions: p.placementRevisions,
      clearSchedulingStatus: options.clearsStatus(p),
    };
    const from = p.slot.moveFrom;
    if (from) {
      const reads = locked.moves.get(`${p.replica.instanceId}/${p.replica.ordinal}`);
      const stillThere =
        reads?.placement?.modRevision === from.modRevision &&
        reads.placement.value.node === from.value.node &&
        !reads.oldNodeRecord &&
        reads.oldFence?.value.state === 'fenced';
      if (!reads || !stillThere) {
        drop.push({ planned: p, reason: `replica left ${from.value.node} or the node is no longer fenced` });
        continue;
      }
      commit.move = { from: from.value, reads };
    }
    if (options.opsFor([...keep, commit]) > options.maxOps) {
      drop.push({ planned: p, reason: 'transaction size limit; next wave' });
      continue;
    }
    keep.push(commit);
    candidate = withReplica(candidate, p.replica);
  }
  return { keep, drop };
}
