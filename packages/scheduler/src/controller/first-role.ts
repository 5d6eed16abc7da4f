import type { AssignmentRecord, PrimaryRecord, ReplicaStatus, Versioned } from '@service-foundry/core';

/**
 * Rule C2 of the failsafe (docs/failover.md; the agent's side is failsafe-rule.ts): a
 * replica gets its first role only once the primary's agent has listed the replica's node
 * among the peers it would ask for promises, as read at a revision at or after the replica
 * was placed (its assignment is created in the placement's transaction, moves included).
 * Until then it follows nobody, so it can never be promoted behind the back of a primary
 * that keeps writing through an etcd outage on its known replicas' promises, or alone.
 * The controller writes a first role only while `primary/<id>` and the primary's status
 * are still the ones it checked (compares in the same transaction, controller.ts).
 *
 * | replica's assignment | primary's status                                       | first role? |
 * |----------------------|--------------------------------------------------------|-------------|
 * | already has a role   | any                                                    | not a first role: yes |
 * | no role yet          | none, or written by another node than the primary's    | no (wait)   |
 * |                      | (a relocation's old node shares the status key)        |             |
 * | no role yet          | no `peers` (its agent runs no failsafe, and so fences  | yes         |
 * |                      | itself when its lease runs out)                        |             |
 * | no role yet          | `peers` lists the node at revision ≥ the placement     | yes         |
 * | no role yet          | otherwise                                              | no (wait)   |
 */
export function primaryKnowsOf(
  primary: PrimaryRecord,
  primaryStatus: ReplicaStatus | undefined,
  node: string,
  assignment: Versioned<AssignmentRecord>,
): boolean {
  if (assignment.value.role !== undefined) return true;
  if (primaryStatus?.node !== primary.node) return false;
  const peers = primaryStatus.peers;
  if (!peers) return true;
  return peers.nodes.includes(node) && BigInt(assignment.createRevision) <= BigInt(peers.revision);
}
