import type { AssignmentRecord } from '@service-foundry/core';
import { again, type ReplicaStep, writeStatus } from './replica-actions.js';
import type { AppliedView, ObservedContainer, ReplicaObservation } from './replica-observation.js';
import { sameEndpoint } from './replication-spec.js';

/**
 * Rule 4g of the replica table: a running replica that is not known to be ready, whose
 * assignment names an upstream other than the one it was made with or last followed.
 *
 * Rule 4c re-points only a ready replica, but readiness can depend on the upstream: a Redis
 * replica reports ready only after its first sync, and a Postgres replica on an empty
 * volume is cloning from the upstream its container was made with, retrying for minutes
 * when that one is gone. Waiting for readiness first would wait on an address nothing
 * answers at any more (seen after a failover moved the primary while a replica was being
 * rebuilt). So the replica is told to follow before readiness is awaited; when it cannot
 * (nothing serves yet to take the command: a clone in progress), the container is made
 * again from the assignment, on the same volume, so the clone starts over from the right
 * upstream. A container made for an unknown upstream (adopted, or made on a volume that
 * already held data) is only told to follow: making it again would change nothing, since
 * the data on the volume decides what a restarted server follows.
 *
 * Undefined: nothing to re-point, or the follow was tried and readiness is next.
 */
export function repointBeforeReady(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
): ReplicaStep | undefined {
  const upstream = assignment.upstream;
  if (assignment.role !== 'replica' || !upstream || applied.mayBePrimary) return undefined;
  if (sameEndpoint(applied.upstream, upstream)) return undefined;
  const tried = observed.pass.tried.follow;
  if (!tried) {
    return again({
      kind: 'follow',
      containerId: container.id,
      upstream: { ...upstream },
      ...(assignment.epoch !== undefined ? { epoch: assignment.epoch } : {}),
    });
  }
  const madeFor = applied.upstream;
  if (tried.ok || !madeFor) return undefined;
  const from = `${madeFor.host}:${madeFor.port}`;
  const to = `${upstream.host}:${upstream.port}`;
  const message =
    `replica ${assignment.instanceId}/${assignment.ordinal} on node ${observed.node} is made again to follow ${to} ` +
    `instead of ${from}: it was not ready and could not follow (${tried.error}); its volume is kept`;
  return again(
    writeStatus({
      state: 'creating',
      containerId: container.id,
      message: `re-creating: upstream ${from} → ${to} before it was ready`,
    }),
    // A kill: nothing relies on a replica that is not ready, and a clone in progress (a shell
    // as the container's first process) ignores the stop signal for the whole grace period.
    { kind: 'kill', containerId: container.id },
    { kind: 'remove-container', containerId: container.id },
    { kind: 'forget' },
    { kind: 'event', event: 'replica-recreated', message },
  );
}
