import type { AssignmentRecord, Endpoint } from '@service-foundry/core';
import { again, type ReplicaAction, type ReplicaStep, writeStatus } from './replica-actions.js';
import type { AppliedView, ObservedContainer, ReplicaObservation } from './replica-observation.js';
import { endpointText, sameEndpoint } from './replication-spec.js';

/**
 * Rule 4g of the replica table: a running replica that is not known to be ready, whose
 * assignment names an upstream other than the one it follows (or that one is unknown).
 *
 * Rule 4c re-points only a ready replica, but readiness can depend on the upstream: a Redis
 * replica reports ready only after its first sync, and a Postgres replica on an empty
 * volume is cloning from the upstream its container was made with, retrying for minutes
 * when that one is gone. Waiting for readiness first would wait on an address nothing
 * answers at any more (seen after a failover moved the primary while a replica was being
 * rebuilt). So a replica is told to follow before readiness is awaited. When it cannot
 * (nothing serves yet to take the command: a clone in progress) and its container was made
 * for another upstream, the container is made again from the assignment, on the same
 * volume, so a clone starts over from the right upstream.
 *
 * Only a server known to be a replica is told anything: `follow` must never reach a server
 * that may have been promoted, and an unknown role is asked first.
 *
 * Undefined: nothing to re-point, or what could be done was tried and readiness is next.
 */
export function repointBeforeReady(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
): ReplicaStep | undefined {
  const upstream = replicaUpstream(assignment, applied);
  if (!upstream || sameEndpoint(applied.upstream, upstream)) return undefined;
  const { tried } = observed.pass;
  if (applied.role === undefined) {
    return tried.role ? undefined : again({ kind: 'probe-role', containerId: container.id });
  }
  if (applied.role !== 'replica') return undefined;
  if (!tried.follow) {
    return again({
      kind: 'follow',
      containerId: container.id,
      upstream: { ...upstream },
      ...(assignment.epoch !== undefined ? { epoch: assignment.epoch } : {}),
    });
  }
  if (tried.follow.ok || !madeForAnother(container, upstream)) return undefined;
  return remake(
    assignment,
    observed,
    container,
    upstream,
    `it was not ready and could not follow (${tried.follow.error})`,
    [
      // A kill: nothing relies on a replica that is not ready, and a clone in progress (a shell
      // as the container's first process) ignores the stop signal for the whole grace period.
      { kind: 'kill', containerId: container.id },
    ],
  );
}

/**
 * The same rule for a stopped replica (a clone that gave up on a gone upstream exits):
 * made again from the assignment rather than started with the environment it was made
 * with. Undefined: start it as it is.
 */
export function remakeStopped(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
): ReplicaStep | undefined {
  const upstream = replicaUpstream(assignment, applied);
  if (!upstream || !madeForAnother(container, upstream)) return undefined;
  return remake(assignment, observed, container, upstream, 'it stopped', []);
}

/** The upstream of a replica the rule may act on: assigned `replica`, never a possible primary. */
function replicaUpstream(assignment: AssignmentRecord, applied: AppliedView): Endpoint | undefined {
  return assignment.role === 'replica' && !applied.mayBePrimary ? assignment.upstream : undefined;
}

/** Made (its environment names) an upstream other than `upstream`; false when unknown. */
function madeForAnother(container: ObservedContainer, upstream: Endpoint): boolean {
  return container.madeFor !== undefined && !sameEndpoint(container.madeFor, upstream);
}

function remake(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  upstream: Endpoint,
  why: string,
  halt: ReplicaAction[],
): ReplicaStep {
  const from = container.madeFor ? endpointText(container.madeFor) : 'unknown';
  const to = endpointText(upstream);
  const message =
    `replica ${assignment.instanceId}/${assignment.ordinal} on node ${observed.node} is made again for upstream ${to} ` +
    `instead of ${from}: ${why}; its volume is kept`;
  return again(
    writeStatus({ state: 'creating', containerId: container.id, message: `re-creating: upstream ${from} → ${to}` }),
    ...halt,
    { kind: 'remove-container', containerId: container.id },
    { kind: 'forget' },
    { kind: 'event', event: 'replica-recreated', message },
  );
}
