import { type AssignmentRecord, sameLimits } from '@service-foundry/core';
import {
  adjustLimits,
  again,
  containerFields,
  endPass,
  limitsProblem,
  type ReplicaAction,
  type ReplicaStep,
  replaceForImage,
  replaceStopTimeoutSeconds,
  restartBackoff,
  retryMs,
  unmetPrerequisites,
  withContainer,
  writeStatus,
} from './replica-actions.js';
import type { ObservedContainer, ReplicaObservation } from './replica-observation.js';

/**
 * A service without a replication recipe: one server, no roles, no epochs; one step per
 * call, like decideReplicated. Pure; every row has a test in test/standalone-decisions.test.ts.
 *
 * | #  | situation                                                 | actions                                                          |
 * |----|-----------------------------------------------------------|------------------------------------------------------------------|
 * | u1 | first look: assignment `image` set, the container made from another | status `creating` "upgrading: …", stop 40 s, remove it, keep the volume; then as n1 |
 * | l1 | container's CPU or memory limits differ from the assignment's, not tried this pass | change them in place (`docker update`; memory lowered only below 90% use) |
 * | n1 | no container, prerequisites not looked up                 | look up image and secret                                         |
 * | n2 | image or secret missing                                   | `failed` "image … not found" / `creating` "waiting for the instance secret", retry 1 s |
 * | n3 | no container, prerequisites met                           | status `creating`, volume and container named after the replica  |
 * | n4 | running, own status `running` with the container's limits, l1 not failed | none: it runs                                  |
 * | n4b| running, own status `running`, otherwise                  | status `running` with the limits, `ready` or l1's error (retry 1 s) |
 * | n5 | running or stopped, (own) status `failed` less than the back-off ago | retry when the back-off is over                       |
 * | n6 | running, otherwise (adopted, or readiness to try again)   | await readiness                                                  |
 * | n7 | stopped, its status says it ran                           | report the exit: `failed` with the exit code and the last log lines, event `replica-failed` |
 * | n8 | stopped, otherwise                                        | start the same container                                         |
 * | n9 | started in this pass                                      | await readiness, or report the exit when it stopped already      |
 * | n10| ready                                                     | status `running` with host and port, `ready`                     |
 */
export function decideStandalone(assignment: AssignmentRecord, observed: ReplicaObservation, now: number): ReplicaStep {
  // The assignment holds nothing else a standalone server decides on: it runs, or it does not.
  return replaceOrResize(assignment, observed) ?? standalone(observed, now, () => []);
}

/** Rule u1 on a pass's first look, then rule l1. */
function replaceOrResize(assignment: AssignmentRecord, observed: ReplicaObservation): ReplicaStep | undefined {
  const { container, pass } = observed;
  const upgrade = container && pass.looks === 0 ? replaceForImage(assignment, container, observed.node) : undefined;
  return upgrade ?? adjustLimits(assignment, observed);
}

/**
 * A replica of a volume-shipping plan (catalog `volumeShipping`): the service's own
 * replication is not used; one replica serves, the others are cold copies of its volume
 * (assignments with a periodic `seed`, handled by the seeder before this is reached).
 * Pure; rows tested in test/standalone-decisions.test.ts.
 *
 * | #  | assignment          | container   | actions                                                                  |
 * |----|---------------------|-------------|--------------------------------------------------------------------------|
 * | v1 | no role             | running     | none                                                                     |
 * | v1 | no role             | not running | status `creating` "waiting for the controller to choose a role"          |
 * | v2 | `replica` (standby) | any         | stop it if it runs (a demoted primary), forget it, status `stopped`      |
 * | v3 | `primary`           | not running | read `primary/<id>` (I2, self-fencing); refused: `failed`/`creating` "not starting as primary: …", retry 1 s |
 * | v4 | `primary`           | otherwise   | as a standalone server (u1 first); once it runs, tracked as a primary so self-fencing (I3) kills it |
 */
export function decideShipped(assignment: AssignmentRecord, observed: ReplicaObservation, now: number): ReplicaStep {
  const { container, pass } = observed;
  if (assignment.role === undefined) {
    if (container?.running) return endPass();
    return endPass(writeStatus({ state: 'creating', message: 'waiting for the controller to choose a role' }));
  }
  if (assignment.role === 'replica') {
    const stop: ReplicaAction[] = container?.running
      ? [
          { kind: 'warn', message: 'demoted to standby: stopping the container' },
          { kind: 'stop', containerId: container.id, timeoutSeconds: replaceStopTimeoutSeconds },
        ]
      : [];
    return endPass(
      ...stop,
      { kind: 'forget' },
      writeStatus({
        state: 'stopped',
        message: 'standby: waiting for the controller to name the primary to copy',
        ...withContainer(container?.id),
      }),
    );
  }
  if (!container?.running && !pass.readiness) {
    // Read once per pass, before anything is created or started.
    const claim = pass.claims.start;
    if (!claim) return again({ kind: 'read-claim', purpose: 'start', epoch: assignment.epoch ?? 0 });
    if (!claim.ok) {
      return endPass(
        writeStatus({
          state: container ? 'failed' : 'creating',
          message: `not starting as primary: ${claim.reason}`,
          ...withContainer(container?.id),
        }),
        { kind: 'retry-after', ms: retryMs },
      );
    }
  }
  const upgrade = replaceOrResize(assignment, observed);
  if (upgrade) return upgrade;
  const epoch = assignment.epoch !== undefined ? { epoch: assignment.epoch } : {};
  return standalone(observed, now, (containerId) =>
    observed.applied ? [] : [{ kind: 'track-primary', containerId, ...epoch }],
  );
}

function standalone(
  observed: ReplicaObservation,
  now: number,
  whenRunning: (containerId: string) => ReplicaAction[],
): ReplicaStep {
  const { container, status, pass } = observed;
  const problem = limitsProblem(observed);
  const runningStatus = (running: ObservedContainer, port: number) =>
    endPass(
      writeStatus({
        state: 'running',
        containerId: running.id,
        ...containerFields(running),
        host: observed.address,
        port,
        message: problem ?? 'ready',
      }),
      ...whenRunning(running.id),
      ...(problem !== undefined ? [{ kind: 'retry-after', ms: retryMs } as const] : []),
    );
  if (pass.readiness) {
    if (!pass.readiness.ready || !container) return endPass();
    return runningStatus(container, pass.readiness.port);
  }
  if (pass.started !== undefined) {
    if (!container?.running) return endPass({ kind: 'report-exit', containerId: pass.started });
    return again({ kind: 'await-ready', containerId: pass.started });
  }
  if (container) {
    const own = status?.containerId === container.id;
    if (container.running && own && status?.state === 'running') {
      if (problem === undefined && sameLimits(status.limits, container.limits))
        return endPass(...whenRunning(container.id));
      if (status.port !== undefined) return runningStatus(container, status.port);
    }
    if (!container.running && own && (status?.state === 'running' || status?.state === 'starting')) {
      // Report the crash first; a later pass restarts it, so the failure is visible.
      return endPass({ kind: 'report-exit', containerId: container.id });
    }
    // A running container backs off only after its own failure (a readiness timeout worth another try).
    const backoff = container.running && !own ? [] : restartBackoff(observed, now);
    if (backoff.length > 0) return endPass(...backoff);
    if (container.running) return again({ kind: 'await-ready', containerId: container.id });
    return again({ kind: 'start', containerId: container.id });
  }
  const prerequisites = pass.prerequisites;
  if (!prerequisites) return again({ kind: 'look-up-prerequisites' });
  if (prerequisites.kind !== 'ready') return endPass(...unmetPrerequisites(prerequisites));
  return again(
    writeStatus({ state: 'creating', message: 'creating volume and container' }),
    { kind: 'ensure-volume', name: prerequisites.volume },
    { kind: 'create-container', volume: prerequisites.volume },
  );
}
