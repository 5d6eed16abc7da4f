import type { AssignmentRecord, SwitchoverRecord, Versioned } from '@service-foundry/core';
import { runsInRole } from './plan-change.js';
import { inSyncReplicas } from './switchover.js';
import type { InstanceView } from './topology.js';

/** A switchover an upgrade asked for and that failed is asked for again no sooner than this. */
export const upgradeSwitchoverRetryMs = 30_000;
/** `requestedBy` of the switchovers an upgrade asks for. */
export const upgradeRequester = 'upgrade';

/** The next step of rolling an instance onto its image, as a pure function of its state. */
export type UpgradeStep =
  | { kind: 'settled' }
  | { kind: 'wait'; description: string }
  /** Write `image` into these replicas' assignments: their agents replace the containers. */
  | { kind: 'set-image'; ordinals: number[]; description: string }
  /** Ask for a switchover to this replica (it runs the image and is in sync). */
  | { kind: 'switchover'; ordinal: number; node: string; description: string };

export interface UpgradeInput {
  view: InstanceView;
  now: number;
  /** The instance's latest switchover record, if any. */
  switchover: SwitchoverRecord | undefined;
  lastPrimaryPosition: bigint | undefined;
  maxLagBytes: number;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Kept replicas (ordinals below the count) with a running assignment, lowest ordinal first. */
function keptAssignments(view: InstanceView): Versioned<AssignmentRecord>[] {
  return [...view.assignments.values()]
    .filter((a) => a.value.ordinal < view.instance.replicas && a.value.desired !== 'removed')
    .sort((a, b) => a.value.ordinal - b.value.ordinal);
}

/** A replica that runs (as its status says) the image its assignment names. */
function runsImage(view: InstanceView, ordinal: number, image: string): boolean {
  const status = view.statuses.get(ordinal)?.value;
  return status?.state === 'running' && status.image === image;
}

/**
 * Why an upgrade is not over yet although every replica was given the image (a replica
 * still restarting or rebuilding on it); undefined when every kept replica runs it.
 */
export function imageRunProblem(view: InstanceView): string | undefined {
  const image = view.instance.image;
  if (image === undefined) return undefined;
  const waiting = keptAssignments(view)
    .filter((a) => !runsImage(view, a.value.ordinal, image))
    .map((a) => a.value.ordinal);
  if (waiting.length === 0) return undefined;
  return `upgrading to ${image}: waiting for replica(s) ${waiting.join(', ')} to run it`;
}

/**
 * Rolls an instance onto `instance.image` (an upgrade to the catalog's maintenance
 * version), one replica at a time, so the only interruption of a replicated instance is
 * one switchover. Every row is tested in test/upgrade.test.ts; docs/upgrades.md has the
 * same table.
 *
 * | #  | situation                                                            | step                                          |
 * |----|----------------------------------------------------------------------|-----------------------------------------------|
 * | u0 | the instance names no image                                          | settled                                       |
 * | u2 | every kept replica named the image                                   | settled (the operation waits until they run it: imageRunProblem) |
 * | u1 | a replica named the image but does not run it yet                    | wait: it restarts                             |
 * | u3 | no native replication (one server, or volume-shipping standbys)      | name the image on every replica: one restart  |
 * | u4 | no primary, or a switchover under way                                | wait                                          |
 * | u5 | a kept replica is not running in its role                            | wait: one replica at a time                   |
 * | u6 | a replica other than the primary runs the old image                  | name the image on the lowest such one         |
 * | u7 | only the primary is left, one replica                                | name the image on it: one restart             |
 * | u8 | only the primary is left, the last upgrade switchover failed lately  | wait, saying why, then ask again              |
 * | u9 | only the primary is left, an upgraded replica in sync                | switchover to the most advanced one           |
 * | u10| only the primary is left, none in sync                               | wait, saying why                              |
 *
 * After u9 the old primary rejoins as a replica rebuilt from the new primary, already on
 * the image (switchover-driver.ts), so no second restart follows.
 */
export function decideUpgrade(input: UpgradeInput): UpgradeStep {
  const { view, now } = input;
  const image = view.instance.image;
  if (image === undefined) return { kind: 'settled' };
  const kept = keptAssignments(view);
  const outdated = kept.filter((a) => a.value.image !== image);
  if (outdated.length === 0) return { kind: 'settled' };
  const named = kept.filter((a) => a.value.image === image);
  const restarting = named.filter((a) => !runsImage(view, a.value.ordinal, image));
  if (restarting.length > 0) {
    const ordinals = restarting.map((a) => a.value.ordinal).join(', ');
    return {
      kind: 'wait',
      description: `upgrading to ${image}: ${named.length - restarting.length} of ${kept.length} replicas run it; replica(s) ${ordinals} restarting on it`,
    };
  }
  if (!view.replicated) {
    return {
      kind: 'set-image',
      ordinals: outdated.map((a) => a.value.ordinal),
      description: `upgrading to ${image}: restarting the server on it (unavailable until it is ready again)`,
    };
  }
  const primary = view.primary;
  if (!primary) return { kind: 'wait', description: `upgrading to ${image}: waiting for a primary` };
  const phase = input.switchover?.phase;
  if (phase !== undefined && phase !== 'done' && phase !== 'failed') {
    return { kind: 'wait', description: `upgrading to ${image}: a switchover is under way (${phase})` };
  }
  const primaryOrdinal = primary.value.ordinal;
  const notInRole = kept.filter((a) => !runsInRole(view, a.value.ordinal));
  if (notInRole.length > 0) {
    const ordinals = notInRole.map((a) => a.value.ordinal).join(', ');
    return {
      kind: 'wait',
      description: `upgrading to ${image}: ${plural(named.length, 'replica')} of ${kept.length} done; waiting for replica(s) ${ordinals} to run in their role before the next restart`,
    };
  }
  const replica = outdated.find((a) => a.value.ordinal !== primaryOrdinal);
  if (replica) {
    const ordinal = replica.value.ordinal;
    return {
      kind: 'set-image',
      ordinals: [ordinal],
      description: `upgrading to ${image}: restarting replica ${ordinal} on it (${named.length + 1} of ${kept.length})`,
    };
  }
  if (kept.length === 1) {
    return {
      kind: 'set-image',
      ordinals: [primaryOrdinal],
      description: `upgrading to ${image}: restarting the only replica on it (unavailable until it is ready again)`,
    };
  }
  const last = input.switchover;
  if (last?.phase === 'failed' && last.requestedBy === upgradeRequester) {
    const since = now - Date.parse(last.updatedAt);
    if (since < upgradeSwitchoverRetryMs) {
      return {
        kind: 'wait',
        description: `upgrading to ${image}: the switchover away from the primary failed (${last.message}); asking again in ${Math.ceil((upgradeSwitchoverRetryMs - since) / 1000)} s`,
      };
    }
  }
  const candidates = inSyncReplicas(view, now, input.lastPrimaryPosition, input.maxLagBytes).filter((s) =>
    runsImage(view, s.ordinal, image),
  );
  const target = candidates[0];
  if (!target) {
    return {
      kind: 'wait',
      description: `upgrading to ${image}: every replica but the primary runs it; none is in sync to take over yet`,
    };
  }
  return {
    kind: 'switchover',
    ordinal: target.ordinal,
    node: target.node,
    description: `upgrading to ${image}: switching over to replica ${target.ordinal} on ${target.node}, then the old primary rejoins on it`,
  };
}
