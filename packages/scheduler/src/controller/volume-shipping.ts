import { type AssignmentRecord, replicaVolumeSource } from '@service-foundry/core';
import { primaryKnowsOf } from './first-role.js';
import type { AssignmentChange, InstanceView } from './topology.js';

function sameSeed(a: AssignmentRecord['seed'], b: AssignmentRecord['seed']): boolean {
  return (
    a?.from.node === b?.from.node &&
    a?.from.volume === b?.from.volume &&
    a?.round === b?.round &&
    a?.everySeconds === b?.everySeconds
  );
}

/**
 * Assignments of a volume-shipping instance (catalog plan `volumeShipping`), as a pure
 * function of its state, like topology.ts for native replication:
 *
 * | situation                               | replica                  | assignment                                   |
 * |-----------------------------------------|--------------------------|----------------------------------------------|
 * | no primary key, none bootstrapping yet  | lowest live placed one   | role primary, epoch 0 (bootstrap)            |
 * | no primary key                          | the others               | unchanged (nothing to copy from yet)         |
 * | primary key at epoch E, ordinal P       | P                        | role primary, epoch E, no seed               |
 * | primary key at epoch E                  | every other replica      | role replica, epoch E, seed from P's volume every `intervalSeconds` |
 * | a standby's first role                  | a new standby            | only once the primary lists its node (C2, first-role.ts) |
 *
 * A standby keeps its seed while its node is down, so that it copies before it could ever
 * serve again; a demoted primary becomes such a standby (its volume is replaced by the next
 * complete copy, never merged).
 */
export function shippingAssignments(view: InstanceView, intervalSeconds: number): AssignmentChange[] {
  const changes: AssignmentChange[] = [];
  const propose = (ordinal: number, node: string, next: AssignmentRecord) => {
    const current = view.assignments.get(ordinal);
    if (current?.value.desired !== 'running') return;
    const c = current.value;
    if (c.role === next.role && c.epoch === next.epoch && sameSeed(c.seed, next.seed)) return;
    changes.push({ ordinal, node, current, next });
  };
  const withoutSeed = ({ seed: _seed, ...rest }: AssignmentRecord): AssignmentRecord => rest;

  if (!view.primary) {
    if ([...view.assignments.values()].some((a) => a.value.role === 'primary')) return changes;
    const first = view.placements.find((p) => view.liveNodes.has(p.node) && view.assignments.has(p.ordinal));
    const assignment = first && view.assignments.get(first.ordinal);
    if (first && assignment)
      propose(first.ordinal, first.node, { ...withoutSeed(assignment.value), role: 'primary', epoch: 0 });
    return changes;
  }
  const epoch = Number(view.primary.modRevision);
  const { ordinal: primaryOrdinal, node: primaryNode, instanceId } = view.primary.value;
  for (const placement of view.placements) {
    const assignment = view.assignments.get(placement.ordinal);
    if (!assignment) continue;
    if (placement.ordinal === primaryOrdinal) {
      propose(placement.ordinal, placement.node, { ...withoutSeed(assignment.value), role: 'primary', epoch });
      continue;
    }
    if (!primaryKnowsOf(view.primary.value, view.statuses.get(primaryOrdinal)?.value, placement.node, assignment)) {
      continue;
    }
    const from = { node: primaryNode, volume: replicaVolumeSource(instanceId, primaryOrdinal) };
    propose(placement.ordinal, placement.node, {
      ...assignment.value,
      role: 'replica',
      epoch,
      seed: { from, round: 1, everySeconds: intervalSeconds },
    });
  }
  return changes;
}
