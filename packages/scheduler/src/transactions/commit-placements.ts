import { randomBytes } from 'node:crypto';
import {
  type AssignmentRecord,
  type Etcd3,
  type EventRecord,
  json,
  type Keyspace,
  type NodeAllocation,
  type PlacementRecord,
  type Resources,
  replicaId,
  type Versioned,
} from '@service-foundry/core';
import type { ICompare, IRequestOp } from 'etcd3';
import { commitTxn, compare, op } from './etcd-ops.js';
import type { LockedNode, MoveReads } from './lock-nodes.js';

/** How many nodes a replica remembers having lived on. */
const historyLength = 5;

/** Event keys need a unique tie-breaker: a random process prefix and a counter, cheaper than random bytes each. */
const eventKeyPrefix = randomBytes(4).toString('hex');
let eventCounter = 0;

export interface ReplicaToCommit {
  instanceId: string;
  ordinal: number;
  resources: Resources;
  serviceName: string;
  planName: string;
  /** The instance's image (absent on instances from before upgrades): the assignment runs it. */
  image?: string;
  /** Mod revision of the instance record the decision was based on. */
  instanceRevision: string;
  /**
   * Every placement key of the instance, this replica's own included, with the revision
   * the decision saw ('0': absent). Comparing them all means no sibling was placed or
   * moved meanwhile, which is what keeps zone anti-affinity true across nodes.
   */
  placementRevisions: ReadonlyMap<string, string>;
  /** The instance becomes fully placed: delete its scheduling status in the same transaction. */
  clearSchedulingStatus: boolean;
  /** Set when the replica moves off a node that is gone and confirmed fenced. */
  move?: { from: PlacementRecord; reads: MoveReads };
}

export interface NodeCommit {
  locked: LockedNode;
  replicas: readonly ReplicaToCommit[];
}

export interface CommittedNode {
  node: string;
  allocation: Versioned<NodeAllocation>;
  placements: Versioned<PlacementRecord>[];
  /** Ledgers of old nodes the moved replicas left. */
  oldAllocations: Versioned<NodeAllocation>[];
  /** Instance ids whose scheduling status was deleted. */
  clearedStatuses: string[];
  replicas: readonly ReplicaToCommit[];
}

export interface CommitResult {
  revision: string;
  /** Nodes whose placements were written (nodes given no replicas only had their lock released). */
  committed: CommittedNode[];
  /** Nodes whose comparisons failed: something changed since the lock's reads or the decision. */
  conflicted: string[];
}

export interface CommitContext {
  scheduler: string;
  /** Lease the placement events live under (24 h). */
  eventLeaseId: string;
  now?: Date;
}

/** Compares, writes and the lock release of one node's placements, as nested transaction parts. */
export interface NodeTxn {
  compare: ICompare[];
  success: IRequestOp[];
  failure: IRequestOp[];
  allocation: NodeAllocation;
  placements: PlacementRecord[];
  oldAllocations: NodeAllocation[];
  clearedStatuses: string[];
}

function seen(item: { modRevision: string } | undefined): string {
  return item?.modRevision ?? '0';
}

/**
 * One node's transaction: it commits only if we still hold the node's lock (the lock
 * key's create revision is the fencing token, I2), the node's ledger, record, control and
 * fence are exactly as read under the lock, and every instance and sibling placement is
 * as the decision saw it. Then it writes the ledger, each placement, each assignment and
 * each placement event, and releases the lock — all or nothing. If any comparison fails
 * it writes nothing and only releases the lock (if still ours).
 */
export function buildNodeTxn(
  keys: Keyspace,
  commit: NodeCommit,
  lockRevision: string,
  context: CommitContext,
): NodeTxn {
  const { locked } = commit;
  const node = locked.node;
  const lockKey = keys.nodeLock(node);
  const now = context.now ?? new Date();
  if (commit.replicas.length === 0) {
    // Nothing left to place here after the re-check: only give the lock back.
    return {
      compare: [compare.createdAt(lockKey, lockRevision)],
      success: [op.delete(lockKey)],
      failure: [],
      allocation: locked.allocation?.value ?? { node, replicas: {} },
      placements: [],
      oldAllocations: [],
      clearedStatuses: [],
    };
  }
  const compares: ICompare[] = [
    compare.createdAt(lockKey, lockRevision),
    compare.unchangedSince(keys.allocation(node), seen(locked.allocation)),
    compare.unchangedSince(keys.node(node), seen(locked.record)),
    compare.unchangedSince(keys.nodeControl(node), seen(locked.control)),
    compare.unchangedSince(keys.fence(node), seen(locked.fence)),
  ];
  const success: IRequestOp[] = [];
  const ledger: NodeAllocation = { node, replicas: { ...(locked.allocation?.value.replicas ?? {}) } };
  const placements: PlacementRecord[] = [];
  const oldAllocations: NodeAllocation[] = [];
  const clearedStatuses: string[] = [];
  const comparedKeys = new Set<string>();
  const compareOnce = (c: ICompare) => {
    const key = `${c.target}:${c.key?.toString()}`;
    if (comparedKeys.has(key)) return;
    comparedKeys.add(key);
    compares.push(c);
  };

  for (const replica of commit.replicas) {
    const id = replicaId(replica.instanceId, replica.ordinal);
    ledger.replicas[id] = { instanceId: replica.instanceId, ordinal: replica.ordinal, resources: replica.resources };
    const move = replica.move;
    const ownKey = keys.placement(replica.instanceId, replica.ordinal);
    // The replica's own placement must be absent (a new placement) or exactly the one being
    // moved — whatever else the decision saw. This alone keeps a replica placed at most once.
    compareOnce(move ? compare.unchangedSince(ownKey, seen(move.reads.placement)) : compare.absent(ownKey));
    compareOnce(compare.unchangedSince(keys.instance(replica.instanceId), replica.instanceRevision));
    for (const [key, revision] of replica.placementRevisions) compareOnce(compare.unchangedSince(key, revision));
    const previousNodes = move ? [move.from.node, ...(move.from.previousNodes ?? [])].slice(0, historyLength) : [];
    const placement: PlacementRecord = {
      instanceId: replica.instanceId,
      ordinal: replica.ordinal,
      node,
      placedAt: now.toISOString(),
      scheduler: context.scheduler,
      ...(previousNodes.length ? { previousNodes } : {}),
    };
    const assignment: AssignmentRecord = {
      instanceId: replica.instanceId,
      ordinal: replica.ordinal,
      serviceName: replica.serviceName,
      planName: replica.planName,
      resources: replica.resources,
      desired: 'running',
      ...(replica.image !== undefined ? { image: replica.image } : {}),
    };
    placements.push(placement);
    success.push(
      op.put(keys.placement(replica.instanceId, replica.ordinal), json(placement)),
      op.put(keys.assignment(node, replica.instanceId, replica.ordinal), json(assignment)),
    );
    if (move) {
      const { reads, from } = move;
      const oldNode = from.node;
      // The old node must still be gone and fenced, and its ledger and assignment as read.
      compareOnce(compare.unchangedSince(keys.node(oldNode), seen(reads.oldNodeRecord)));
      compareOnce(compare.unchangedSince(keys.fence(oldNode), seen(reads.oldFence)));
      compareOnce(compare.unchangedSince(keys.allocation(oldNode), seen(reads.oldAllocation)));
      const oldAssignmentKey = keys.assignment(oldNode, replica.instanceId, replica.ordinal);
      compareOnce(compare.unchangedSince(oldAssignmentKey, seen(reads.oldAssignment)));
      if (reads.oldAllocation?.value.replicas[id]) {
        const rest = { ...reads.oldAllocation.value.replicas };
        delete rest[id];
        const old: NodeAllocation = { node: oldNode, replicas: rest };
        oldAllocations.push(old);
        success.push(op.put(keys.allocation(oldNode), json(old)));
      }
      // The old node keeps its assignment, marked removed: its agent, if it ever comes
      // back, removes the container and volume and then deletes the key.
      if (reads.oldAssignment) {
        success.push(
          op.put(oldAssignmentKey, json({ ...reads.oldAssignment.value, desired: 'removed', movedTo: node })),
        );
      }
    }
    const event: EventRecord = {
      at: now.toISOString(),
      kind: move ? 'replica-moved' : 'replica-placed',
      message: move
        ? `replica ${replica.ordinal} moved from ${move.from.node} (fenced) to ${node}`
        : `replica ${replica.ordinal} placed on ${node}`,
      instanceId: replica.instanceId,
      node,
      source: context.scheduler,
    };
    const eventKey = keys.event(now.getTime(), `${eventKeyPrefix}${(eventCounter++).toString(36)}`);
    success.push(op.put(eventKey, json(event), context.eventLeaseId));
    if (replica.clearSchedulingStatus) {
      success.push(op.delete(keys.schedulingStatus(replica.instanceId)));
      clearedStatuses.push(replica.instanceId);
    }
  }
  success.unshift(op.put(keys.allocation(node), json(ledger)));
  success.push(op.delete(lockKey));
  const failure = [op.txn([compare.createdAt(lockKey, lockRevision)], [op.delete(lockKey)])];
  return { compare: compares, success, failure, allocation: ledger, placements, oldAllocations, clearedStatuses };
}

/**
 * Commits the placements of many locked nodes in one request: one nested transaction per
 * node (`buildNodeTxn`), each succeeding or failing on its own. etcd judges all of them
 * on the store as it was before the request, so they must not depend on each other —
 * the scheduler guarantees that by committing at most one replica per instance, and at
 * most one move per old node, per request.
 */
export async function commitPlacements(
  client: Etcd3,
  keys: Keyspace,
  commits: readonly NodeCommit[],
  lockRevision: string,
  context: CommitContext,
): Promise<CommitResult> {
  // etcd judges every nested transaction on the store before the request: two replicas of
  // one instance in one request would not see each other (zone anti-affinity, siblings).
  const instances = new Set<string>();
  for (const c of commits) {
    for (const r of c.replicas) {
      if (instances.has(r.instanceId)) throw new Error(`one request carries two replicas of ${r.instanceId}`);
      instances.add(r.instanceId);
    }
  }
  const txns = commits.map((c) => buildNodeTxn(keys, c, lockRevision, context));
  const res = await commitTxn(client, {
    compare: [],
    success: txns.map((t) => op.txn(t.compare, t.success, t.failure)),
    failure: [],
  });
  const revision = res.header.revision;
  const versioned = <T>(key: string, value: T): Versioned<T> => ({
    key,
    value,
    modRevision: revision,
    createRevision: revision,
    lease: '0',
  });
  const committed: CommittedNode[] = [];
  const conflicted: string[] = [];
  commits.forEach((c, i) => {
    const txn = txns[i];
    const node = c.locked.node;
    if (c.replicas.length === 0) return;
    if (!txn || !res.responses[i]?.response_txn?.succeeded) {
      conflicted.push(node);
      return;
    }
    committed.push({
      node,
      allocation: versioned(keys.allocation(node), txn.allocation),
      placements: txn.placements.map((p) => versioned(keys.placement(p.instanceId, p.ordinal), p)),
      oldAllocations: txn.oldAllocations.map((a) => versioned(keys.allocation(a.node), a)),
      clearedStatuses: txn.clearedStatuses,
      replicas: c.replicas,
    });
  });
  return { revision, committed, conflicted };
}

/** Operations a node transaction will need, before building it (for etcd's per-transaction limit). */
export function commitOpsFor(replicas: ReadonlyArray<{ placementKeys: number; moves: boolean }>): number {
  let compares = 5;
  let writes = 2;
  for (const r of replicas) {
    compares += 2 + r.placementKeys + (r.moves ? 4 : 0);
    writes += 4 + (r.moves ? 2 : 0);
  }
  return Math.max(compares, writes);
}
