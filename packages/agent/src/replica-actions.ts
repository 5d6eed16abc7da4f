import {
  type AssignmentRecord,
  type ContainerLimits,
  type Endpoint,
  type IoPolicy,
  type ReplicaRole,
  sameLimits,
} from '@service-foundry/core';
import { wantedLimits } from './container-limits.js';
import type {
  AppliedView,
  ClaimPurpose,
  CreatePrerequisites,
  ObservedContainer,
  ReplicaObservation,
} from './replica-observation.js';
import type { StatusUpdate } from './status-writer.js';

/** Changes to what the agent remembers as applied; `undefined` forgets a field. */
export type AppliedChanges = { -readonly [K in keyof AppliedView]?: AppliedView[K] | undefined };

/** How a replicated container is created (rules 2 and 3). */
export interface ReplicatedCreate {
  role: ReplicaRole;
  generation: number;
  epoch?: number;
  /** A replica's upstream, which it clones from on an empty volume. */
  upstream?: Endpoint;
}

/**
 * One thing the executor (replica-executor.ts) does. Decisions return them; the executor
 * does exactly what they say, in order, and records what it found in the pass's facts.
 */
export type ReplicaAction =
  // Reports
  | { kind: 'write-status'; status: StatusUpdate }
  | { kind: 'warn'; message: string }
  | {
      kind: 'event';
      event: 'replica-volume-superseded' | 'replica-image-changed' | 'replica-recreated';
      message: string;
    }
  | { kind: 'retry-after'; ms: number }
  // Looks a decision needs before it can go on
  | { kind: 'read-claim'; purpose: ClaimPurpose; epoch: number }
  | { kind: 'look-up-prerequisites'; generation?: number }
  | { kind: 'probe-role'; containerId: string }
  // Docker
  | { kind: 'ensure-volume'; name: string; generation?: number; rebuildEpoch?: number }
  | { kind: 'create-container'; volume: string; replicated?: ReplicatedCreate }
  | { kind: 'start'; containerId: string }
  | { kind: 'stop'; containerId: string; timeoutSeconds: number }
  | { kind: 'kill'; containerId: string }
  | { kind: 'remove-container'; containerId: string }
  | { kind: 'set-limits'; containerId: string; limits: ContainerLimits }
  | { kind: 'await-ready'; containerId: string }
  | { kind: 'report-exit'; containerId: string; cause?: string }
  // Replication commands (rule 4)
  | { kind: 'promote'; containerId: string; epoch: number }
  | { kind: 'follow'; containerId: string; upstream: Endpoint; epoch?: number }
  | { kind: 'configure'; containerId: string; io: IoPolicy }
  // What the agent remembers as applied (applied-replicas.ts)
  | { kind: 'note'; containerId: string; changes: AppliedChanges }
  | { kind: 'forget' }
  | { kind: 'track-primary'; containerId: string; epoch?: number };

/** A decision: what to do now, and whether to look again and decide the next step in this pass. */
export interface ReplicaStep {
  actions: ReplicaAction[];
  next: 'look-again' | 'end-pass';
}

export function again(...actions: ReplicaAction[]): ReplicaStep {
  return { actions, next: 'look-again' };
}

export function endPass(...actions: ReplicaAction[]): ReplicaStep {
  return { actions, next: 'end-pass' };
}

export function writeStatus(status: StatusUpdate): ReplicaAction {
  return { kind: 'write-status', status };
}

export function withContainer(containerId: string | undefined): { containerId?: string } {
  return containerId === undefined ? {} : { containerId };
}

/** A refused or failed step is tried again this soon (and on every change). */
export const retryMs = 1000;
/** A replica or standby being replaced stops gracefully first (a possible primary is killed instead). */
export const replaceStopTimeoutSeconds = 10;
/**
 * A container replaced by an upgrade stops gracefully, however long a primary's last
 * checkpoint takes (switchover's stop deadline): a kill would cost a crash recovery.
 */
export const upgradeStopTimeoutSeconds = 40;

/**
 * An upgrade step (rule u1 of both tables): the assignment names an image other than the
 * container's. The container stops gracefully and is removed; the volume stays, and the
 * next look creates the container again on it, from the assignment's image. Undefined:
 * nothing to replace (no image named, or the container runs it already).
 */
export function replaceForImage(
  assignment: Pick<AssignmentRecord, 'image' | 'instanceId' | 'ordinal'>,
  container: ObservedContainer,
  node: string,
): ReplicaStep | undefined {
  const wanted = assignment.image;
  if (wanted === undefined || container.image === undefined || container.image === wanted) return undefined;
  const message =
    `replica ${assignment.instanceId}/${assignment.ordinal} on node ${node} restarts on image ${wanted} ` +
    `(was ${container.image}); its volume is kept`;
  return again(
    writeStatus({
      state: 'creating',
      containerId: container.id,
      message: `upgrading: image ${container.image} → ${wanted}`,
    }),
    { kind: 'stop', containerId: container.id, timeoutSeconds: upgradeStopTimeoutSeconds },
    { kind: 'remove-container', containerId: container.id },
    { kind: 'forget' },
    { kind: 'event', event: 'replica-image-changed', message },
  );
}

/** The image and limits fields of a `running` status: what the container was created from and runs with. */
export function containerFields(container: ObservedContainer): { image?: string; limits?: ContainerLimits } {
  return {
    ...(container.image === undefined ? {} : { image: container.image }),
    ...(container.limits === undefined ? {} : { limits: { ...container.limits } }),
  };
}

/**
 * Rule l1 of both tables: the container runs with CPU or memory limits other than the
 * assignment's (a plan change): change them in place, at most once a pass. Undefined:
 * nothing to change, or tried in this pass (limitsProblem says how it went).
 */
export function adjustLimits(
  assignment: Pick<AssignmentRecord, 'resources'>,
  observed: ReplicaObservation,
): ReplicaStep | undefined {
  const { container, pass } = observed;
  if (!container?.limits || pass.tried.limits) return undefined;
  const wanted = wantedLimits(assignment);
  if (sameLimits(container.limits, wanted)) return undefined;
  return again({ kind: 'set-limits', containerId: container.id, limits: wanted });
}

/** Why the container's limits are not yet the assignment's, after this pass tried to change them. */
export function limitsProblem(observed: ReplicaObservation): string | undefined {
  const tried = observed.pass.tried.limits;
  return tried && !tried.ok ? tried.error : undefined;
}

/**
 * A failed container is started again only once `restartBackoffMs` passed since its
 * failure, so the failure stays visible. The actions to wait, or none when it may start.
 */
export function restartBackoff(observed: ReplicaObservation, now: number): ReplicaAction[] {
  const status = observed.status;
  if (status?.state !== 'failed') return [];
  const waitMs = observed.restartBackoffMs - (now - Date.parse(status.updatedAt));
  return waitMs <= 0 ? [] : [{ kind: 'retry-after', ms: waitMs }];
}

/** The status saying what a create still waits for (image, secret). */
export function unmetPrerequisites(prerequisites: Exclude<CreatePrerequisites, { kind: 'ready' }>): ReplicaAction[] {
  switch (prerequisites.kind) {
    case 'image-missing':
      return [
        writeStatus({ state: 'failed', message: `image ${prerequisites.image} not found: run \`sf images build\`` }),
      ];
    case 'secret-missing':
      return [
        writeStatus({ state: 'creating', message: 'waiting for the instance secret' }),
        { kind: 'retry-after', ms: retryMs },
      ];
    case 'secret-invalid':
      return [
        writeStatus({
          state: 'creating',
          message: 'the instance secret is malformed or sealed with another key; waiting for a valid one',
        }),
        { kind: 'retry-after', ms: retryMs },
      ];
  }
}
