import type { UpgradeInterruption, UpgradeView } from '@service-foundry/api';
import {
  ErrorCodes,
  type InstanceRecord,
  imageReferencePattern,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  statusCodec,
  switchoverCodec,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { concurrencyError, OsbError } from './osb-errors.js';
import type { ResolvedPlan } from './params-validation.js';

/**
 * Upgrades: moving an instance onto the maintenance version its plan offers now and the
 * catalog's image of it. The broker only records the target on the instance (`image`,
 * `maintenanceVersion`) with an `update` operation; the controller rolls the replicas onto
 * the image one at a time and finishes the operation. Shared by the OSB `PATCH`
 * (maintenance_info) and the operator API (`sf upgrade-service`, `sf upgrade-all`).
 */

/** What an upgrade moves an instance to: always the catalog's current image, never an older one. */
export interface UpgradeTarget {
  /** The plan's `maintenance_info.version`; absent when the plan has none. */
  version: string | undefined;
  image: string;
}

/** An upgrade an instance qualifies for, and what starting it writes. */
export interface Upgrade {
  target: UpgradeTarget;
  reason: string;
  interruption: UpgradeInterruption;
  description: string;
  change: Pick<InstanceRecord, 'maintenanceVersion' | 'image'>;
}

const imageReference = new RegExp(imageReferencePattern);

/**
 * What a new instance records as its image: the catalog's, when a record can hold it (a
 * reference the records' pattern refuses is left out, and the controller then runs the
 * catalog's image as it did before upgrades; checkUpgrade refuses to upgrade onto it).
 */
export function provisionImage(plan: ResolvedPlan): { image: string } | Record<string, never> {
  const image = plan.entry.runtime.image;
  return imageReference.test(image) ? { image } : {};
}

export function upgradeTarget(plan: ResolvedPlan): UpgradeTarget {
  return { version: plan.plan.maintenance_info?.version, image: plan.entry.runtime.image };
}

/**
 * Why `instance` does not run `target`, or undefined when it does. A replica still on
 * another image while no operation runs means the last upgrade did not finish (it failed
 * or was cut short), whether that replica runs or not: upgrading again restarts the roll.
 * Replicas that report no image (agents from before upgrades) are not counted.
 */
export function upgradeReason(
  instance: InstanceRecord,
  target: UpgradeTarget,
  statuses: readonly ReplicaStatus[],
): string | undefined {
  if (target.version !== undefined && instance.maintenanceVersion !== target.version) {
    return `runs maintenance version ${instance.maintenanceVersion ?? '(unrecorded)'}; its plan offers ${target.version}`;
  }
  if (instance.image === undefined) {
    return `its image is not recorded (created before upgrades); the catalog's is ${target.image}`;
  }
  if (instance.image !== target.image) return `runs image ${instance.image}; the catalog's is now ${target.image}`;
  if (instance.operation.state === 'in progress') return undefined;
  const behind = statuses
    .filter((s) => s.image !== undefined && s.image !== target.image)
    .map((s) => s.ordinal)
    .sort((a, b) => a - b);
  if (behind.length === 0) return undefined;
  const which = behind.length === 1 ? `replica ${behind[0]} still runs` : `replicas ${behind.join(', ')} still run`;
  return `${which} an older image than ${target.image} (the last upgrade did not finish)`;
}

/**
 * Replicated instances keep serving through an upgrade but for one switchover; any other
 * (one replica, or volume-shipping standbys that are copies, not live replicas) is down
 * while its primary restarts.
 */
export function interruptionOf(ctx: BrokerContext, instance: InstanceRecord): UpgradeInterruption {
  const native = ctx.catalog.replicationMode(instance.serviceName, instance.planName) === 'native';
  return native && instance.replicas >= 2 ? 'switchover' : 'restart';
}

/** The operation's description: what moves where, and what clients will notice. */
export function upgradeDescription(
  instance: InstanceRecord,
  target: UpgradeTarget,
  interruption: UpgradeInterruption,
): string {
  const from = instance.maintenanceVersion ?? '(unrecorded)';
  const head =
    target.version === undefined
      ? `upgrading to image ${target.image}`
      : from === target.version
        ? `upgrading to the rebuilt image of maintenance version ${target.version}`
        : `upgrading from maintenance version ${from} to ${target.version}`;
  if (interruption === 'switchover') {
    return `${head}: replicas restart one at a time on image ${target.image}, then a switchover moves the primary (one switchover's write gap)`;
  }
  if (instance.replicas === 1) {
    return `${head}: its one replica restarts once on image ${target.image}, on the same volume; the instance is unavailable for that restart`;
  }
  return `${head}: each replica restarts once on image ${target.image}, on its own volume; the instance is unavailable while its primary restarts`;
}

/** The upgrade `instance` qualifies for (see upgradeReason), or undefined when it runs what its plan offers. */
export function upgradeFor(
  ctx: BrokerContext,
  instance: InstanceRecord,
  plan: ResolvedPlan,
  statuses: readonly ReplicaStatus[],
): Upgrade | undefined {
  const target = upgradeTarget(plan);
  const reason = upgradeReason(instance, target, statuses);
  if (reason === undefined) return undefined;
  const interruption = interruptionOf(ctx, instance);
  return {
    target,
    reason,
    interruption,
    description: upgradeDescription(instance, target, interruption),
    change: { ...(target.version === undefined ? {} : { maintenanceVersion: target.version }), image: target.image },
  };
}

/** upgradeFor, with the instance's replica statuses read from etcd. */
export async function findUpgrade(
  ctx: BrokerContext,
  instance: InstanceRecord,
  plan: ResolvedPlan,
): Promise<Upgrade | undefined> {
  const statuses = await readPrefix(ctx.client, statusCodec, ctx.keys.instanceStatuses(instance.id), ctx.log);
  return upgradeFor(
    ctx,
    instance,
    plan,
    [...statuses.items.values()].map((s) => s.value),
  );
}

/** 422 for an upgrade that cannot be done as asked; asking again the same way fails again. */
export function upgradeRefused(description: string): OsbError {
  return new OsbError(422, 'MaintenanceUpdateNotSupported', description, ErrorCodes.invalidInput).withOutcome({
    instanceUsable: true,
    updateRepeatable: false,
  });
}

/**
 * Refuses an upgrade that cannot start now: an image the records cannot hold (a catalog
 * mistake), or a switchover under way (the roll ends with one of its own).
 */
export async function checkUpgrade(ctx: BrokerContext, instance: InstanceRecord, upgrade: Upgrade): Promise<void> {
  if (!imageReference.test(upgrade.target.image)) {
    throw upgradeRefused(
      `the catalog's image for ${instance.serviceName} (${JSON.stringify(upgrade.target.image.slice(0, 100))}) is not an image reference an upgrade can record; fix runtime.image in the catalog`,
    );
  }
  const switchover = await readRecord(ctx.client, switchoverCodec, ctx.keys.switchover(instance.id));
  if (switchover && switchover.value.phase !== 'done' && switchover.value.phase !== 'failed') {
    throw concurrencyError(
      `a switchover of ${instance.name} is under way (${switchover.value.phase}); upgrade once it is done`,
    );
  }
}

/** What `sf` shows before an upgrade: from, to, why, and the interruption. */
export function upgradeView(
  ctx: BrokerContext,
  instance: InstanceRecord,
  plan: ResolvedPlan,
  upgrade: Upgrade | undefined,
): UpgradeView {
  const target = upgradeTarget(plan);
  const interruption = upgrade?.interruption ?? interruptionOf(ctx, instance);
  return {
    instanceId: instance.id,
    name: instance.name,
    service: instance.serviceName,
    plan: instance.planName,
    running: { version: instance.maintenanceVersion ?? null, image: instance.image ?? null },
    offered: { version: target.version ?? null, image: target.image },
    reason: upgrade?.reason ?? null,
    interruption,
    description:
      upgrade?.description ??
      `runs what its plan offers (maintenance version ${target.version ?? '(none)'}, image ${target.image})`,
  };
}
