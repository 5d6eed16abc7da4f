import { type AssignmentRecord, sameIo } from '@service-foundry/core';
import { appliedStatusFields } from './applied-replicas.js';
import { replicaResourceName } from './container-spec.js';
import {
  type AppliedChanges,
  adjustLimits,
  again,
  containerFields,
  endPass,
  limitsProblem,
  type ReplicaAction,
  type ReplicaStep,
  type ReplicatedCreate,
  replaceForImage,
  replaceStopTimeoutSeconds,
  restartBackoff,
  retryMs,
  unmetPrerequisites,
  withContainer,
  writeStatus,
} from './replica-actions.js';
import type { AppliedView, ObservedContainer, ReplicaObservation } from './replica-observation.js';
import { remakeStopped, repointBeforeReady } from './replica-repoint.js';
import { replicaVolumeName } from './replica-volumes.js';
import { sameEndpoint } from './replication-spec.js';

/**
 * The lifecycle of a replica of a service with a `replication` recipe, one step per call:
 * the reconciler observes, calls this, has the executor carry out the actions, and looks
 * again until a step ends the pass. Pure; "applied" is what this agent did or observed inside
 * the container (applied-replicas.ts), never the last assignment. Every row has a test in
 * test/replica-decisions.test.ts; the package README has the same table.
 *
 * | #   | situation                                                        | actions                                                                 |
 * |-----|------------------------------------------------------------------|-------------------------------------------------------------------------|
 * | 1   | no `role`, container running                                     | none (the observer tracks it for self-fencing)                          |
 * | 1   | no `role`, otherwise                                             | status `creating` "waiting for the controller to choose a role"         |
 * | 3   | no container, `replica` without `upstream`                       | status `creating` "waiting for the controller to name the upstream"     |
 * | 2   | no container, `primary`                                          | read `primary/<id>` (I2); refused: `creating` "not starting as primary: …", retry 1 s |
 * | c1  | no container, prerequisites not looked up                        | look up image, secret and the volume of the generation                  |
 * | c2  | image or secret missing                                          | `failed` "image … not found" / `creating` "waiting for the instance secret", retry 1 s |
 * | c3  | no container, prerequisites met                                  | status `creating`, volume (labelled with the generation), container as role, env with upstream |
 * | 4e  | first look: `generation` above the container's, or a possible primary assigned `replica` | status "rebuilding: …", new volume, kill (possible primary) or stop 10 s, remove the container, keep the old volume, event `replica-volume-superseded`; then as c1 |
 * | 4e  | the fresh volume would be the one in use                         | `failed` "cannot rebuild …"                                             |
 * | u1  | first look: assignment `image` set, the container made from another | status `creating` "upgrading: image …", stop 40 s, remove the container, keep the volume, event `replica-image-changed`; then as c1 (same volume, new image) |
 * | l1  | container's CPU or memory limits differ from the assignment's, not tried this pass | change them in place (`docker update`; memory lowered only below 90% use); a failure joins the `running` status message, retry 1 s |
 * | r1  | stopped, its status says it ran                                  | report the exit (with the self-fence reason, if any)                    |
 * | r2  | stopped, failed less than the back-off ago                       | retry when the back-off is over                                         |
 * | 2   | stopped, `primary`                                               | read `primary/<id>` right before the start; refused: `failed` "not starting as primary: …", retry 1 s |
 * | r3  | stopped, otherwise                                               | (mark it a possible primary,) start                                     |
 * | s1  | started in this pass, possible primary, node self-fenced         | kill; `failed` "not starting as primary: self-fenced while it was starting" |
 * | s2  | started in this pass, not running                                | report the exit                                                         |
 * | s3  | started in this pass, running                                    | await readiness (status `starting`)                                     |
 * | g1  | running, own status `running` and port published                | rule 4                                                                  |
 * | 4g  | running, not known ready, `replica` whose `upstream` differs from the applied one (or that is unknown), role unknown | ask `role` |
 * | 4g  | the same, role replica                                           | `follow {{host}} {{port}}` before readiness (Redis is ready only once synced) |
 * | 4g  | its follow failed, the container made for another upstream (`sf.upstream`) | status `creating` "re-creating: …", kill, remove the container, keep the volume, event `replica-recreated`; then as c1 (a clone in progress starts over from the new upstream) |
 * | 4h  | stopped (exit reported), `replica` made for another upstream, not a possible primary | the same without the kill: made again rather than started |
 * | g2  | running, own status `failed` less than the back-off ago          | retry when the back-off is over                                         |
 * | g3  | running, otherwise                                               | await readiness                                                         |
 * | g4  | readiness failed in this pass                                    | end the pass (the status says why)                                      |
 * | 5   | ready, peer differs from the applied one                         | remember the peer                                                       |
 * | 4   | ready, role unknown                                              | ask `role`; failed: "role unknown: …"                                   |
 * | 4a  | ready, `primary` assigned, role replica                          | read `primary/<id>`; refused: "not promoted: …"; else `promote`, `role` until primary, event `replica-promoted` |
 * | 4b  | ready, `primary` assigned, primary at another epoch              | read `primary/<id>`; refused: its reason (nothing is stopped); else remember the epoch |
 * | 4a  | promoted in this pass while self-fenced                          | "self-fenced during the promotion"                                      |
 * | 4e  | ready, `replica` assigned, possible primary                      | "assigned as replica but it is primary: rebuilding it" (the next pass rebuilds) |
 * | 3   | ready, `replica` without `upstream`, none applied                | "waiting for the controller to name the upstream"                       |
 * | 4c  | ready, `upstream` differs from the applied one                   | `follow {{host}} {{port}}`                                              |
 * | 4c  | ready, same upstream, new epoch                                  | remember the epoch                                                      |
 * | 4d  | ready, `io` differs from the applied one                         | `configure {{durability}} {{localIo}}`                                  |
 * | 4f  | a replication step failed in this pass                           | its error (stderr) joins the status message; retry 1 s                  |
 * | 5   | ready, all steps done                                            | status `running` with what is applied (role, epoch, peer, io, generation, image, limits), `ready` or the problems |
 */
export function decideReplicated(assignment: AssignmentRecord, observed: ReplicaObservation, now: number): ReplicaStep {
  const { container, applied, pass } = observed;
  if (assignment.role === undefined) {
    if (container?.running) return endPass();
    return endPass(
      writeStatus({
        state: 'creating',
        message: 'waiting for the controller to choose a role',
        ...withContainer(container?.id),
      }),
    );
  }
  if (pass.readiness) {
    if (!pass.readiness.ready || !container || !applied) return endPass();
    return running(assignment, observed, container, applied, pass.readiness.port);
  }
  if (pass.started !== undefined) return afterStart(observed, pass.started);
  if (container && applied) {
    // Decided on a pass's first look only: a reason found later in the pass is reported first.
    const reason = pass.looks === 0 ? rebuildReason(assignment, applied) : undefined;
    if (reason) return rebuild(assignment, observed, container, applied, reason);
    const upgrade = pass.looks === 0 ? replaceForImage(assignment, container, observed.node) : undefined;
    if (upgrade) return upgrade;
    const resize = adjustLimits(assignment, observed);
    if (resize) return resize;
    return container.running
      ? converge(assignment, observed, container, applied, now)
      : restart(assignment, observed, container, applied, now);
  }
  return create(assignment, observed);
}

export function rebuildReason(assignment: AssignmentRecord, applied: AppliedView): string | undefined {
  const generation = assignment.generation ?? 0;
  if (generation > applied.generation) return `generation ${applied.generation} → ${generation}`;
  if (assignment.role === 'replica' && applied.mayBePrimary) {
    return 'demoted: it was (or may have been) primary, so its data may have diverged from the new primary';
  }
  return undefined;
}

/** Rule 2 refused: say why (once in the log), start nothing, look again soon. */
function refused(observed: ReplicaObservation, reason: string, containerId?: string): ReplicaAction[] {
  const message = `not starting as primary: ${reason}`;
  return [
    ...(observed.status?.message !== message ? [{ kind: 'warn', message } as const] : []),
    writeStatus({ state: containerId ? 'failed' : 'creating', message, ...withContainer(containerId) }),
    { kind: 'retry-after', ms: retryMs },
  ];
}

/** Rules 2 and 3 for a replica without a container. */
function create(assignment: AssignmentRecord, observed: ReplicaObservation): ReplicaStep {
  const { pass } = observed;
  const role = assignment.role ?? 'replica';
  const generation = assignment.generation ?? 0;
  if (role === 'replica' && !assignment.upstream) {
    return endPass(writeStatus({ state: 'creating', message: 'waiting for the controller to name the upstream' }));
  }
  if (role === 'primary') {
    // Checked here too so a stale assignment creates nothing; checked again right before the start.
    const claim = pass.claims.create;
    if (!claim) return again({ kind: 'read-claim', purpose: 'create', epoch: assignment.epoch ?? 0 });
    if (!claim.ok) return endPass(...refused(observed, claim.reason));
  }
  const prerequisites = pass.prerequisites;
  if (!prerequisites) return again({ kind: 'look-up-prerequisites', generation });
  if (prerequisites.kind !== 'ready') return endPass(...unmetPrerequisites(prerequisites));
  const { volume } = prerequisites;
  return again(
    writeStatus({ state: 'creating', message: `creating volume ${volume} and a container as ${role}` }),
    ...createReplicated(volume, {
      role,
      generation,
      ...(assignment.epoch !== undefined ? { epoch: assignment.epoch } : {}),
      ...(role === 'replica' && assignment.upstream ? { upstream: { ...assignment.upstream } } : {}),
    }),
  );
}

/** Rule c3's volume and container (prepared-decisions.ts makes them the same way). */
export function createReplicated(volume: string, replicated: ReplicatedCreate): ReplicaAction[] {
  return [
    { kind: 'ensure-volume', name: volume, generation: replicated.generation },
    { kind: 'create-container', volume, replicated },
  ];
}

/** Rule 4e: never reuses or deletes the old volume; a new one is made first, so a crash half way is harmless. */
function rebuild(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
  reason: string,
): ReplicaStep {
  const { node } = observed;
  const generation = assignment.generation ?? 0;
  const oldVolume = container.volume ?? replicaResourceName(node, assignment);
  const rebuildEpoch = generation > applied.generation ? undefined : (assignment.epoch ?? 0);
  const newVolume = replicaVolumeName(node, assignment, generation, rebuildEpoch);
  if (newVolume === oldVolume) {
    return endPass(
      writeStatus({
        state: 'failed',
        message: `cannot rebuild (${reason}): the fresh volume would be ${newVolume}, the one in use; a new generation or epoch is needed`,
        containerId: container.id,
      }),
    );
  }
  const message =
    `replica ${assignment.instanceId}/${assignment.ordinal} on node ${node} rebuilt as a replica (${reason}); ` +
    `volume ${oldVolume} is kept, superseded by ${newVolume}`;
  return again(
    writeStatus({ state: 'creating', containerId: container.id, message: `rebuilding: ${reason}` }),
    { kind: 'ensure-volume', name: newVolume, generation, ...(rebuildEpoch !== undefined ? { rebuildEpoch } : {}) },
    // A possible primary must stop writing now, not after a graceful shutdown.
    applied.mayBePrimary
      ? { kind: 'kill', containerId: container.id }
      : { kind: 'stop', containerId: container.id, timeoutSeconds: replaceStopTimeoutSeconds },
    { kind: 'remove-container', containerId: container.id },
    { kind: 'forget' },
    { kind: 'event', event: 'replica-volume-superseded', message },
  );
}

/** A stopped container: report the exit first, back off, then start it again (rule 2 for a primary). */
function restart(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
  now: number,
): ReplicaStep {
  const { status, pass } = observed;
  if (status?.containerId === container.id && (status.state === 'running' || status.state === 'starting')) {
    const cause = applied.fencedReason;
    return endPass({ kind: 'report-exit', containerId: container.id, ...(cause !== undefined ? { cause } : {}) });
  }
  const remade = remakeStopped(assignment, observed, container, applied);
  if (remade) return remade;
  const backoff = restartBackoff(observed, now);
  if (backoff.length > 0) return endPass(...backoff);
  const start: ReplicaAction = { kind: 'start', containerId: container.id };
  if (assignment.role !== 'primary') return again(start);
  // I2: the primary key, read right before the start.
  const claim = pass.claims.start;
  if (!claim) return again({ kind: 'read-claim', purpose: 'start', epoch: assignment.epoch ?? 0 });
  if (!claim.ok) return endPass(...refused(observed, claim.reason, container.id));
  if (applied.mayBePrimary) return again(start);
  return again({ kind: 'note', containerId: container.id, changes: { mayBePrimary: true } }, start);
}

function afterStart(observed: ReplicaObservation, containerId: string): ReplicaStep {
  const { container, applied } = observed;
  if (applied?.mayBePrimary && observed.selfFenced) {
    // Fenced between the check and the start; the fence loop would kill it too.
    return endPass(
      { kind: 'kill', containerId },
      ...refused(observed, 'self-fenced while it was starting', containerId),
    );
  }
  const forgetFence: ReplicaAction[] =
    applied?.fencedReason !== undefined ? [{ kind: 'note', containerId, changes: { fencedReason: undefined } }] : [];
  if (!container?.running) return endPass(...forgetFence, { kind: 'report-exit', containerId });
  return again(...forgetFence, { kind: 'await-ready', containerId });
}

/** A running container: readiness after adoption or a failure, then rule 4. */
function converge(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
  now: number,
): ReplicaStep {
  const { status } = observed;
  const own = status?.containerId === container.id;
  if (own && status?.state === 'running' && container.servicePort !== undefined) {
    return running(assignment, observed, container, applied, container.servicePort);
  }
  const repoint = repointBeforeReady(assignment, observed, container, applied);
  if (repoint) return repoint;
  if (own) {
    const backoff = restartBackoff(observed, now);
    if (backoff.length > 0) return endPass(...backoff);
  }
  return again({ kind: 'await-ready', containerId: container.id });
}

/** Rules 4a–4f and 5 on a ready container, one replication step at a time, then status `running`. */
function running(
  assignment: AssignmentRecord,
  observed: ReplicaObservation,
  container: ObservedContainer,
  applied: AppliedView,
  port: number,
): ReplicaStep {
  const { pass } = observed;
  const changes: AppliedChanges = {};
  const view: { -readonly [K in keyof AppliedView]: AppliedView[K] } = { ...applied };
  const remember = (update: AppliedChanges) => {
    Object.assign(changes, update);
    Object.assign(view, update);
  };
  const notes = (): ReplicaAction[] =>
    Object.keys(changes).length > 0 ? [{ kind: 'note', containerId: container.id, changes }] : [];
  const next = (action: ReplicaAction) => again(...notes(), action);
  const problems: string[] = [];

  if (container.peer && !sameEndpoint(view.peer, container.peer)) remember({ peer: { ...container.peer } });
  if (view.role === undefined) {
    const probe = pass.tried.role;
    if (!probe) return next({ kind: 'probe-role', containerId: container.id });
    if (!probe.ok) problems.push(`role unknown: ${probe.error}`);
  }
  if (view.role !== undefined && assignment.role === 'primary') {
    const epoch = assignment.epoch ?? 0;
    if (!(view.role === 'primary' && view.epoch === epoch)) {
      const claim = pass.claims.promote;
      if (!claim) return next({ kind: 'read-claim', purpose: 'promote', epoch });
      if (!claim.ok) problems.push(view.role === 'primary' ? claim.reason : `not promoted: ${claim.reason}`);
      else if (view.role === 'primary') remember({ epoch });
      else if (!pass.tried.promote) return next({ kind: 'promote', containerId: container.id, epoch });
      else if (!pass.tried.promote.ok) problems.push(pass.tried.promote.error);
    }
    if (pass.tried.promote && observed.selfFenced) problems.push('self-fenced during the promotion');
  } else if (view.role !== undefined && view.mayBePrimary) {
    problems.push('assigned as replica but it is primary: rebuilding it');
  } else if (view.role !== undefined) {
    const upstream = assignment.upstream;
    if (!upstream) {
      if (!view.upstream) problems.push('waiting for the controller to name the upstream');
    } else if (sameEndpoint(view.upstream, upstream)) {
      if (assignment.epoch !== undefined && view.epoch !== assignment.epoch) remember({ epoch: assignment.epoch });
    } else if (!pass.tried.follow) {
      const epoch = assignment.epoch !== undefined ? { epoch: assignment.epoch } : {};
      return next({ kind: 'follow', containerId: container.id, upstream: { ...upstream }, ...epoch });
    } else if (!pass.tried.follow.ok) {
      problems.push(pass.tried.follow.error);
    }
  }
  if (assignment.io && !sameIo(view.io, assignment.io)) {
    const configured = pass.tried.configure;
    if (!configured) return next({ kind: 'configure', containerId: container.id, io: { ...assignment.io } });
    if (!configured.ok) problems.push(configured.error);
  }
  const limits = limitsProblem(observed);
  if (limits !== undefined) problems.push(limits);
  return endPass(
    ...notes(),
    writeStatus({
      ...appliedStatusFields(view),
      state: 'running',
      containerId: container.id,
      ...containerFields(container),
      host: observed.address,
      port,
      message: problems.length > 0 ? problems.join('; ') : 'ready',
    }),
    ...(problems.length > 0 ? [{ kind: 'retry-after', ms: retryMs } as const] : []),
  );
}
