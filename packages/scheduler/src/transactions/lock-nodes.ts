import {
  type AssignmentRecord,
  allocationCodec,
  assignmentCodec,
  type Etcd3,
  type Keyspace,
  type NodeAllocation,
  type NodeControlRecord,
  type NodeFenceRecord,
  type NodeRecord,
  nodeCodec,
  nodeControlCodec,
  nodeFenceCodec,
  type PlacementRecord,
  placementCodec,
  type Versioned,
} from '@service-foundry/core';
import { commitTxn, compare, decodeRange, op } from './etcd-ops.js';

/** A replica to move off a node that is gone and fenced; its old keys are read under the lock. */
export interface MoveToRead {
  instanceId: string;
  ordinal: number;
  oldNode: string;
}

/** A node's record, operator control and fence state, as the decision saw them. */
export interface KnownNodeState {
  record: Versioned<NodeRecord> | undefined;
  control: Versioned<NodeControlRecord> | undefined;
  fence: Versioned<NodeFenceRecord> | undefined;
}

export interface LockRequest {
  node: string;
  moves: readonly MoveToRead[];
  /**
   * When given, these are not read under the lock: the commit compares their revisions
   * instead, which costs etcd less than returning them. The ledger is always read.
   */
  known?: KnownNodeState;
}

/** What etcd held for a re-placement's old node when the new node was locked. */
export interface MoveReads {
  placement: Versioned<PlacementRecord> | undefined;
  oldAllocation: Versioned<NodeAllocation> | undefined;
  oldAssignment: Versioned<AssignmentRecord> | undefined;
  oldNodeRecord: Versioned<NodeRecord> | undefined;
  oldFence: Versioned<NodeFenceRecord> | undefined;
}

/** The node's keys as etcd held them when the lock was taken (or as known, see LockRequest). */
export interface LockedNode {
  node: string;
  allocation: Versioned<NodeAllocation> | undefined;
  record: Versioned<NodeRecord> | undefined;
  control: Versioned<NodeControlRecord> | undefined;
  fence: Versioned<NodeFenceRecord> | undefined;
  /** By `<instanceId>/<ordinal>`. */
  moves: Map<string, MoveReads>;
}

export interface LockResult {
  /** Create revision of every lock taken by this request: the fencing token the commit compares. */
  revision: string;
  locked: LockedNode[];
  /** Nodes whose lock another scheduler holds. */
  busy: string[];
}

const readsPerMove = 5;

/** Operations one node takes in the lock request (for etcd's per-transaction limit). */
export function lockOpsFor(moves: number): number {
  return 5 + readsPerMove * moves;
}

/**
 * Takes the etcd mutex of every node in `requests` that is free, in one request: one
 * nested transaction per node, "if the lock key does not exist, create it under our
 * lease and return the node's ledger, record, operator control and fence state". Nodes
 * locked elsewhere are reported busy. Everything a placement on the node depends on is
 * thus read at the moment the lock is taken, and compared again when committing.
 */
export async function lockNodes(
  client: Etcd3,
  keys: Keyspace,
  requests: readonly LockRequest[],
  leaseId: string,
  owner: string,
): Promise<LockResult> {
  const success = requests.map(({ node, moves, known }) =>
    op.txn(
      [compare.absent(keys.nodeLock(node))],
      [
        op.put(keys.nodeLock(node), owner, leaseId),
        op.get(keys.allocation(node)),
        ...(known ? [] : [op.get(keys.node(node)), op.get(keys.nodeControl(node)), op.get(keys.fence(node))]),
        ...moves.flatMap((m) => [
          op.get(keys.placement(m.instanceId, m.ordinal)),
          op.get(keys.allocation(m.oldNode)),
          op.get(keys.assignment(m.oldNode, m.instanceId, m.ordinal)),
          op.get(keys.node(m.oldNode)),
          op.get(keys.fence(m.oldNode)),
        ]),
      ],
    ),
  );
  const res = await commitTxn(client, { compare: [], success, failure: [] });
  const locked: LockedNode[] = [];
  const busy: string[] = [];
  requests.forEach((request, i) => {
    const nested = res.responses[i]?.response_txn;
    if (!nested?.succeeded) {
      busy.push(request.node);
      return;
    }
    const r = nested.responses;
    const { known } = request;
    const nodeReads = known ? 2 : 5;
    const moves = new Map<string, MoveReads>();
    request.moves.forEach((m, j) => {
      const base = nodeReads + readsPerMove * j;
      moves.set(`${m.instanceId}/${m.ordinal}`, {
        placement: decodeRange(placementCodec, r[base]),
        oldAllocation: decodeRange(allocationCodec, r[base + 1]),
        oldAssignment: decodeRange(assignmentCodec, r[base + 2]),
        oldNodeRecord: decodeRange(nodeCodec, r[base + 3]),
        oldFence: decodeRange(nodeFenceCodec, r[base + 4]),
      });
    });
    locked.push({
      node: request.node,
      allocation: decodeRange(allocationCodec, r[1]),
      record: known ? known.record : decodeRange(nodeCodec, r[2]),
      control: known ? known.control : decodeRange(nodeControlCodec, r[3]),
      fence: known ? known.fence : decodeRange(nodeFenceCodec, r[4]),
      moves,
    });
  });
  return { revision: res.header.revision, locked, busy };
}

/**
 * Deletes the locks of `nodes` that are still held under `leaseId`: after a request whose
 * outcome is unknown (a timeout may hide a commit), or for nodes that got no work.
 */
export async function releaseNodeLocks(
  client: Etcd3,
  keys: Keyspace,
  nodes: readonly string[],
  leaseId: string,
): Promise<void> {
  if (nodes.length === 0) return;
  const success = nodes.map((node) =>
    op.txn(
      [{ key: Buffer.from(keys.nodeLock(node)), target: 'Lease', result: 'Equal', lease: leaseId }],
      [op.delete(keys.nodeLock(node))],
    ),
  );
  await commitTxn(client, { compare: [], success, failure: [] });
}
