import {
  type AssignmentRecord,
  type Endpoint,
  ErrorCodes,
  type ReplicaStatus,
  type RouteRecord,
  type SwitchoverRecord,
} from '@service-foundry/core';
import type { InstanceView } from './topology.js';

/** How long the old primary may take to stop (a database checkpoints first). */
export const switchoverStopTimeoutMs = 40_000;
/**
 * After the stop, how long the target may take to report it holds everything: generous,
 * since giving up costs more (the old primary restarts) than waiting for a slow report on
 * a loaded machine.
 */
export const switchoverCatchUpMs = 20_000;
/** After the stop, how long other replicas get to report a position read after it. */
export const switchoverPositionWaitMs = 3000;
/**
 * A target must have reported its position this recently to count as in sync: above the
 * agents' default refresh (5 s) of an unchanged position, so an idle instance qualifies.
 */
export const switchoverFreshMs = 10_000;
/**
 * A requested switchover whose target is in sync but for a late position report waits this
 * long for one (its agent reads the target urgently meanwhile) before it is refused: on a
 * loaded machine a reading can take longer than the refresh, and a refusal then says nothing
 * about the replica.
 */
export const switchoverReportWaitMs = 20_000;
/** After the promotion, how long until the route must name the target. */
export const switchoverPromoteTimeoutMs = 60_000;

/** A replica to stream from the target (a standby of a standby until the promotion completes). */
export interface Repoint {
  ordinal: number;
  node: string;
  upstream: Endpoint;
}

export type SwitchoverDecision =
  | { kind: 'none' }
  | { kind: 'wait'; reason: string }
  /** Ends the switchover as failed; `restart`: the old primary was stopped by it and serves again. */
  | { kind: 'fail'; code: string; reason: string; restart: boolean }
  /** Stops the old primary: from then on it accepts no write. */
  | { kind: 'stop' }
  /**
   * Moves the primary key to the target; `repoint`: the other replicas stream from it at
   * once. `stoppedAt`: when the old primary's agent reported it stopped.
   */
  | { kind: 'promote'; target: ReplicaStatus; repoint: Repoint[]; stoppedAt: string; reason: string }
  | { kind: 'finish'; route: RouteRecord };

export interface SwitchoverInput {
  view: InstanceView;
  record: SwitchoverRecord;
  now: number;
  /** The old primary's last reported position, remembered from before it stopped. */
  lastPrimaryPosition: bigint | undefined;
  route: RouteRecord | undefined;
}

/**
 * Can `status` take over from the current primary without losing writes? A running replica
 * on a live node that follows the primary at its current epoch, reported its position in
 * the last 10 s, and lags by at most `maxLagBytes`. Pure; the broker asks it before it
 * records a request, the controller again before it stops anything. Undefined: it can.
 */
export function targetProblem(
  view: InstanceView,
  ordinal: number,
  now: number,
  lastPrimaryPosition: bigint | undefined,
  maxLagBytes: number,
): string | undefined {
  return checkTarget(view, ordinal, now, lastPrimaryPosition, maxLagBytes)?.reason;
}

/** Why a replica cannot take over; `awaitingReport`: only its position report is missing or late. */
export interface TargetProblem {
  reason: string;
  awaitingReport: boolean;
}

/** {@link targetProblem}, saying whether a fresh position report could clear the problem. */
export function checkTarget(
  view: InstanceView,
  ordinal: number,
  now: number,
  lastPrimaryPosition: bigint | undefined,
  maxLagBytes: number,
): TargetProblem | undefined {
  const problem = (reason: string, awaitingReport = false): TargetProblem => ({ reason, awaitingReport });
  const placement = view.placements.find((p) => p.ordinal === ordinal);
  const primary = view.primary;
  if (!placement) return problem(`replica ${ordinal} is not placed on any node`);
  if (!primary) return problem('the instance has no primary yet');
  if (primary.value.ordinal === ordinal) return problem(`replica ${ordinal} is the primary already`);
  if (!view.liveNodes.has(placement.node)) return problem(`replica ${ordinal}'s node ${placement.node} is not live`);
  const assignment = view.assignments.get(ordinal)?.value;
  if (assignment?.desired !== 'running')
    return problem(`replica ${ordinal} is not meant to run (${assignment?.desired})`);
  const status = view.statuses.get(ordinal)?.value;
  if (status?.state !== 'running' || status.role !== 'replica') {
    return problem(
      `replica ${ordinal} is not a running replica (${status?.state ?? 'no status'}: ${status?.message ?? ''})`,
    );
  }
  const epoch = Number(primary.modRevision);
  if (status.epoch !== epoch) {
    return problem(
      `replica ${ordinal} does not follow the current primary yet (epoch ${status.epoch ?? 'none'}, current ${epoch})`,
    );
  }
  if (status.position === undefined || status.positionAt === undefined) {
    return problem(`replica ${ordinal} has not reported a replication position`, true);
  }
  const age = now - Date.parse(status.positionAt);
  if (age > switchoverFreshMs) {
    return problem(`replica ${ordinal} last reported its position ${Math.round(age / 100) / 10} s ago`, true);
  }
  if (lastPrimaryPosition !== undefined) {
    const lag = lastPrimaryPosition - BigInt(status.position);
    if (lag > BigInt(maxLagBytes)) {
      return problem(`replica ${ordinal} is ${lag} bytes behind the primary (more than ${maxLagBytes})`);
    }
  }
  return undefined;
}

/** Replicas in sync, the most advanced first: the default target. */
export function inSyncReplicas(
  view: InstanceView,
  now: number,
  lastPrimaryPosition: bigint | undefined,
  maxLagBytes: number,
): ReplicaStatus[] {
  return [...view.statuses.values()]
    .map((s) => s.value)
    .filter((s) => targetProblem(view, s.ordinal, now, lastPrimaryPosition, maxLagBytes) === undefined)
    .sort((a, b) => {
      const pa = BigInt(a.position ?? '0');
      const pb = BigInt(b.position ?? '0');
      return pa === pb ? a.ordinal - b.ordinal : pa > pb ? -1 : 1;
    });
}

const refused = (reason: string): SwitchoverDecision => ({
  kind: 'fail',
  code: ErrorCodes.switchoverRefused,
  reason,
  restart: false,
});
const failed = (reason: string, restart: boolean): SwitchoverDecision => ({
  kind: 'fail',
  code: ErrorCodes.switchoverFailed,
  reason,
  restart,
});

/**
 * The switchover state machine, one step per call (docs/failover.md#switchover has the
 * same table; every row is tested in test/switchover-model.test.ts). A switchover is a
 * failover whose old primary cooperates: it stops cleanly first, so it accepts no new
 * write and hands its last WAL (Postgres) or offset (Redis) to its replicas on the way
 * out; then the promotion path of failover takes over (primary key at epoch + 1, the
 * target promotes after its epoch check, the route follows, the old primary rejoins as a
 * replica rebuilt from the new primary).
 *
 * | phase      | condition                                                          | action                                              |
 * |------------|--------------------------------------------------------------------|-----------------------------------------------------|
 * | done/failed| —                                                                  | none                                                |
 * | requested  | primary key no longer `from` at `fromEpoch`                        | fail REFUSED: the primary changed                   |
 * | requested  | the old primary's node is not live                                 | fail REFUSED: failover is in charge                 |
 * | requested  | only the target's position report is missing or late, < 20 s       | wait (its agent reads it urgently)                  |
 * | requested  | the target is not in sync (targetProblem)                          | fail REFUSED with the reason                        |
 * | requested  | otherwise                                                          | stop the old primary (assignment `stopped`)         |
 * | stopping   | primary key moved (a failover)                                     | fail FAILED, old primary desired running again      |
 * | stopping   | the old primary's node is not live                                 | fail FAILED, old primary desired running again      |
 * | stopping   | old primary not `stopped`, stop timeout not passed                 | wait                                                |
 * | stopping   | old primary not `stopped`, stop timeout passed                     | fail FAILED, old primary restarts                   |
 * | stopping   | the target is not a running replica on a live node                 | fail FAILED, old primary restarts                   |
 * | stopping   | target position not read after the stop, catch-up time left        | wait                                                |
 * | stopping   | another live replica has not reported since the stop, < 3 s        | wait                                                |
 * | stopping   | target behind another replica or the old primary, catch-up left    | wait                                                |
 * | stopping   | catch-up time passed                                               | fail FAILED, old primary restarts                   |
 * | stopping   | otherwise                                                          | promote: primary key = target (compare epoch), old  |
 * |            |                                                                    | primary → replica generation + 1, others → target   |
 * | promoting  | primary key not at `toEpoch`                                       | fail FAILED: a failover replaced the target         |
 * | promoting  | route at `toEpoch`                                                 | done                                                |
 * | promoting  | promotion timeout passed                                           | fail FAILED (the target stays primary-elect)        |
 * | promoting  | otherwise                                                          | wait                                                |
 *
 * Why the target then holds every acknowledged write: the old primary acknowledged only
 * what it wrote before it stopped; the target's position, read after the stop, is at
 * least every other replica's and the old primary's last reported one — with `ANY 1`
 * every acknowledged commit is on some replica, so it is on the target. Pure.
 */
export function decideSwitchover(input: SwitchoverInput): SwitchoverDecision {
  const { view, record, now } = input;
  const primary = view.primary;
  const maxLag = view.instance.failover?.maxLagBytes ?? 16 * 1024 * 1024;
  switch (record.phase) {
    case 'done':
    case 'failed':
      return { kind: 'none' };
    case 'requested': {
      if (
        !primary ||
        Number(primary.modRevision) !== record.fromEpoch ||
        primary.value.ordinal !== record.from.ordinal ||
        primary.value.node !== record.from.node
      ) {
        return refused('the primary changed since the switchover was asked for');
      }
      if (!view.liveNodes.has(record.from.node)) {
        return refused(`the primary's node ${record.from.node} is not live: failover is in charge`);
      }
      const problem = checkTarget(view, record.to.ordinal, now, input.lastPrimaryPosition, maxLag);
      if (problem?.awaitingReport && now - Date.parse(record.requestedAt) < switchoverReportWaitMs) {
        return { kind: 'wait', reason: `waiting for replica ${record.to.ordinal} to report: ${problem.reason}` };
      }
      if (problem) return refused(`no switchover to replica ${record.to.ordinal}: ${problem.reason}`);
      return { kind: 'stop' };
    }
    case 'stopping':
      return stopping(input);
    case 'promoting': {
      // The epoch is written after the promotion; until then the primary key naming the target says it.
      const namesTarget =
        primary !== undefined &&
        primary.value.ordinal === record.to.ordinal &&
        primary.value.node === record.to.node &&
        Number(primary.modRevision) > record.fromEpoch;
      const epoch = record.toEpoch ?? (namesTarget ? Number(primary.modRevision) : undefined);
      if (!primary || Number(primary.modRevision) !== epoch) {
        return failed('a failover replaced the target while it was being promoted', false);
      }
      const route = input.route;
      if (route && route.epoch === epoch) return { kind: 'finish', route };
      if (now - Date.parse(record.updatedAt) > switchoverPromoteTimeoutMs) {
        return failed(
          `replica ${record.to.ordinal} did not serve as primary within ${switchoverPromoteTimeoutMs / 1000} s`,
          false,
        );
      }
      return { kind: 'wait', reason: `promoting replica ${record.to.ordinal} on ${record.to.node}` };
    }
  }
}

function stopping(input: SwitchoverInput): SwitchoverDecision {
  const { view, record, now } = input;
  const primary = view.primary;
  if (!primary || Number(primary.modRevision) !== record.fromEpoch) {
    return failed('the primary changed while the old one was stopping (a failover)', true);
  }
  if (!view.liveNodes.has(record.from.node)) {
    return failed(`the old primary's node ${record.from.node} was lost while it was stopping`, true);
  }
  // Its agent writes `stopped` once Docker says the container exited: positions read after
  // that status was written hold everything the old primary wrote.
  const old = view.statuses.get(record.from.ordinal)?.value;
  if (old?.state !== 'stopped') {
    if (now - Date.parse(record.updatedAt) > switchoverStopTimeoutMs) {
      return failed(`the old primary did not stop within ${switchoverStopTimeoutMs / 1000} s`, true);
    }
    return { kind: 'wait', reason: `stopping the old primary on ${record.from.node}` };
  }
  const stoppedAt = Date.parse(old.updatedAt);
  const target = view.statuses.get(record.to.ordinal)?.value;
  const targetPlacement = view.placements.find((p) => p.ordinal === record.to.ordinal);
  if (
    target?.state !== 'running' ||
    target.role !== 'replica' ||
    !targetPlacement ||
    !view.liveNodes.has(targetPlacement.node)
  ) {
    return failed(`replica ${record.to.ordinal} stopped running during the switchover`, true);
  }
  const late = now - stoppedAt > switchoverCatchUpMs;
  const fresh = (s: ReplicaStatus | undefined) =>
    s?.position !== undefined && s.positionAt !== undefined && Date.parse(s.positionAt) > stoppedAt;
  if (!fresh(target)) {
    if (late) return failed(`replica ${record.to.ordinal} reported no position after the stop`, true);
    return { kind: 'wait', reason: `waiting for replica ${record.to.ordinal} to report its position` };
  }
  const position = BigInt(target.position as string);
  let highest = input.lastPrimaryPosition ?? 0n;
  let stale = 0;
  for (const p of view.placements) {
    if (p.ordinal === record.from.ordinal || p.ordinal === record.to.ordinal || !view.liveNodes.has(p.node)) continue;
    const s = view.statuses.get(p.ordinal)?.value;
    if (s?.state !== 'running') continue;
    if (!fresh(s)) {
      stale++;
      continue;
    }
    const other = BigInt(s.position as string);
    if (other > highest) highest = other;
  }
  if (stale > 0 && now - stoppedAt < switchoverPositionWaitMs) {
    return { kind: 'wait', reason: 'waiting for the other replicas to report their positions' };
  }
  if (position < highest) {
    if (late) {
      return failed(
        `replica ${record.to.ordinal} is ${highest - position} bytes behind after the stop; not promoting it`,
        true,
      );
    }
    return { kind: 'wait', reason: `replica ${record.to.ordinal} is catching up (${highest - position} bytes)` };
  }
  const repoint: Repoint[] = [];
  if (target.peer) {
    for (const p of view.placements) {
      if (p.ordinal === record.from.ordinal || p.ordinal === record.to.ordinal || !view.liveNodes.has(p.node)) continue;
      if (view.assignments.get(p.ordinal)?.value.desired !== 'running') continue;
      repoint.push({ ordinal: p.ordinal, node: p.node, upstream: { ...target.peer } });
    }
  }
  return {
    kind: 'promote',
    target,
    repoint,
    stoppedAt: old.updatedAt,
    reason: `planned switchover: replica ${record.to.ordinal} on ${record.to.node} holds everything the old primary wrote (position ${position})`,
  };
}

/** The old primary's assignment once it is stopped for a switchover. */
export function stoppedPrimary(a: AssignmentRecord): AssignmentRecord {
  return { ...a, desired: 'stopped' };
}

/**
 * The old primary's assignment after the promotion: a replica rebuilt from the new primary,
 * from the instance's image (an upgrade's switchover upgrades it on the way).
 */
export function rejoiningPrimary(a: AssignmentRecord, image: string | undefined): AssignmentRecord {
  const { upstream: _old, ...rest } = a;
  return {
    ...rest,
    desired: 'running',
    role: 'replica',
    generation: (a.generation ?? 0) + 1,
    ...(image !== undefined ? { image } : {}),
  };
}

/** The old primary's assignment when a switchover is abandoned: it serves again as it did. */
export function restartedPrimary(a: AssignmentRecord): AssignmentRecord {
  return { ...a, desired: 'running' };
}
