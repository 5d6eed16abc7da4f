import type { AssignmentRecord, ReplicaRole } from '@service-foundry/core';
import { again, endPass, type ReplicaStep } from './replica-actions.js';
import { createReplicated } from './replica-decisions.js';
import type { ReplicaDecide } from './replica-pass.js';

/**
 * The last round of a relocation (`seed.final`: the source is stopped and its final delta is
 * on its way): the replica's container is made meanwhile, so the switch only has to start
 * it (docker create and the secret files were 60–130 ms of the downtime). Nothing is
 * started and no status is written: until the switch, the replica's status is the
 * source's. `role` is the one the copy takes at the switch (`seed.final`), which the
 * assignment gets only then, with the new epoch: the container is made for that role, and
 * the epoch is taken on after readiness (rule 4b). The primary claim (I2) is not read here:
 * the copy is not the primary yet, and the claim is read again right before the start, as
 * for any stopped container. A copy that becomes a replica gets nothing: its upstream is
 * chosen after the switch. Pure; rows tested in test/prepared-decisions.test.ts.
 *
 * | #  | situation                                      | actions                                                    |
 * |----|------------------------------------------------|------------------------------------------------------------|
 * | p1 | a container exists                             | none                                                       |
 * | p2 | a replicated service's copy becomes a `replica` | none (its upstream is chosen after the switch)            |
 * | p3 | prerequisites not looked up                    | look up image, secret (and the volume of the generation)   |
 * | p4 | image or secret missing                        | none (the switch's pass reports it)                        |
 * | p5 | prerequisites met                              | volume and container, as the create rule of the replica's decision table (as `role`, no epoch), without its status |
 */
export function decidePrepared(replicated: boolean, role: ReplicaRole): ReplicaDecide {
  return (assignment: AssignmentRecord, observed): ReplicaStep => {
    const { container, pass } = observed;
    if (container) return endPass();
    if (replicated && role === 'replica') return endPass();
    const generation = assignment.generation ?? 0;
    const prerequisites = pass.prerequisites;
    if (!prerequisites) return again({ kind: 'look-up-prerequisites', ...(replicated ? { generation } : {}) });
    if (prerequisites.kind !== 'ready') return endPass();
    const { volume } = prerequisites;
    if (!replicated) return endPass({ kind: 'ensure-volume', name: volume }, { kind: 'create-container', volume });
    return endPass(...createReplicated(volume, { role, generation }));
  };
}
