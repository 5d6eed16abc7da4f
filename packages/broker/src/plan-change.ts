import {
  allocationCodec,
  ErrorCodes,
  type FailoverPolicy,
  formatResources,
  type InstanceRecord,
  type IoPolicy,
  nodeCodec,
  placementCodec,
  primaryCodec,
  type Resources,
  readRecord,
  readRecords,
  replicaId,
  resizeShortfall,
  sameIo,
  sameResources,
  switchoverCodec,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { checkDurability } from './instance-checks.js';
import { requirePlanVersion } from './maintenance-info.js';
import { concurrencyError, OsbError } from './osb-errors.js';
import { type ResolvedPlan, validateParameters } from './params-validation.js';
import { resolvePolicies } from './policies.js';

/** What an instance record becomes when its plan changes (the controller does the rest). */
export interface PlanChange {
  planId: string;
  planName: string;
  replicas: number;
  /** Per replica; the controller resizes the running ones in place (docker update). */
  resources: Resources;
  parameters: Record<string, unknown>;
  /** In force from the start: unchanged while replicas are added, the new plan's otherwise. */
  io: IoPolicy;
  /** The new plan's IO settings, when they wait until the added replicas run. */
  pendingIo?: IoPolicy;
  failover: FailoverPolicy;
  description: string;
}

/** Parameters that describe the old plan's shape rather than a setting the user keeps. */
const planShapedParameters = new Set(['replicas']);

function planChangeRefused(description: string): OsbError {
  return new OsbError(422, 'PlanChangeNotSupported', description, ErrorCodes.invalidInput).withOutcome({
    instanceUsable: true,
    updateRepeatable: false,
  });
}

/** OSB 2.15: a plan's own `plan_updateable` takes precedence over its service's. */
function updateable(plan: ResolvedPlan): boolean {
  return plan.plan.plan_updateable ?? plan.entry.osb.plan_updateable ?? false;
}

/**
 * Whether every node holding a replica of the instance has room for it at `want` (keeping
 * the larger of the old and new size until the container runs with the new one, see the
 * scheduler's controller/resize.ts). The controller checks again under the ledger's
 * revision; this answers the platform at once instead of an operation that waits.
 */
async function resizeRoomProblem(ctx: BrokerContext, instance: InstanceRecord, want: Resources): Promise<string[]> {
  const placements = await readRecords(ctx.client, placementCodec, ctx.keys.instancePlacements(instance.id));
  const problems: string[] = [];
  for (const placement of placements) {
    if (placement.ordinal >= instance.replicas) continue;
    const [ledger, record] = await Promise.all([
      readRecord(ctx.client, allocationCodec, ctx.keys.allocation(placement.node)),
      readRecord(ctx.client, nodeCodec, ctx.keys.node(placement.node)),
    ]);
    if (!record) continue; // a node that is down: the controller waits for it, as for any replica there
    const key = replicaId(instance.id, placement.ordinal);
    const { short } = resizeShortfall(ledger?.value, record.value.capacity, key, instance.resources, want);
    if (short.length > 0) problems.push(`node ${placement.node} (replica ${placement.ordinal}): ${short.join(', ')}`);
  }
  return problems;
}

/**
 * Checks a plan change and says what the instance record becomes. What is built: moving
 * between plans of one service that run the same kind of replication: a change of replica
 * count and of the plan's defaults (`small` ↔ `ha-small`), and of CPU, memory and disk per
 * replica (`small` ↔ `medium`), resized in place on the nodes that hold the replicas. A
 * smaller disk, a size some node has no room for, or a change between native replication
 * and volume shipping is refused with 422 and changes nothing.
 *
 * Removing replicas never removes the primary: when the primary is a replica the smaller
 * plan does not keep (ordinal ≥ its replica count), the change is refused until a
 * switchover moves it (`sf switchover NAME --to 0`).
 */
export async function planChange(
  ctx: BrokerContext,
  instance: InstanceRecord,
  from: ResolvedPlan,
  to: ResolvedPlan,
  askedParameters: Record<string, unknown> | undefined,
  askedVersion: string | undefined,
): Promise<PlanChange> {
  const service = from.entry.osb.name;
  const move = `instance ${instance.name} cannot move from plan ${from.plan.name} to ${to.plan.name}`;
  if (askedVersion !== undefined) requirePlanVersion(to.plan, service, askedVersion);
  if (!updateable(from)) {
    throw planChangeRefused(`${move}: plans of ${service} are not updateable (plan ${from.plan.name})`);
  }
  const fromMode = ctx.catalog.replicationMode(service, from.plan.name);
  const toMode = ctx.catalog.replicationMode(service, to.plan.name);
  if (fromMode !== toMode) {
    throw planChangeRefused(
      `${move}: its replicas are kept by ${fromMode} replication and the new plan's by ${toMode}; create a new instance from a backup instead`,
    );
  }
  const resources = to.sizing.resources;
  if (resources.diskMb < instance.resources.diskMb) {
    throw planChangeRefused(
      `${move}: its disk would shrink from ${instance.resources.diskMb} MB to ${resources.diskMb} MB per replica, and a volume never shrinks (its data may not fit); create a new instance from a backup instead`,
    );
  }
  const toVersion = to.plan.maintenance_info?.version;
  if (
    toVersion !== undefined &&
    instance.maintenanceVersion !== undefined &&
    toVersion !== instance.maintenanceVersion
  ) {
    throw planChangeRefused(
      `${move}: the new plan runs maintenance version ${toVersion} and the instance ${instance.maintenanceVersion}; an upgrade and a plan change are done one at a time: upgrade first (maintenance_info alone, or sf upgrade-service ${instance.name}), then change the plan`,
    );
  }

  const kept = Object.fromEntries(Object.entries(instance.parameters).filter(([k]) => !planShapedParameters.has(k)));
  const parameters = { ...kept, ...askedParameters };
  validateParameters(to, to.validators['instance update'] ? 'instance update' : 'instance create', parameters);
  const replicas = to.sizing.replicas;
  const policies = resolvePolicies(to.sizing, parameters);
  checkDurability(ctx, to, replicas, policies.io);
  const current = instance.io ?? policies.io;

  if (replicas < instance.replicas) {
    const primary = await readRecord(ctx.client, primaryCodec, ctx.keys.primary(instance.id));
    if (!primary) throw concurrencyError(`instance ${instance.name} has no primary right now (failover?); try again`);
    if (primary.value.ordinal >= replicas) {
      throw planChangeRefused(
        `${move} yet: its primary is replica ${primary.value.ordinal}, which plan ${to.plan.name} (${replicas} replica${replicas === 1 ? '' : 's'}) does not keep; switch over first (sf switchover ${instance.name} --to 0)`,
      );
    }
  }
  const switchover = await readRecord(ctx.client, switchoverCodec, ctx.keys.switchover(instance.id));
  if (switchover && switchover.value.phase !== 'done' && switchover.value.phase !== 'failed') {
    throw concurrencyError(`a switchover of ${instance.name} is under way (${switchover.value.phase})`);
  }
  const resized = !sameResources(instance.resources, resources);
  if (resized) {
    const noRoom = await resizeRoomProblem(
      ctx,
      { ...instance, replicas: Math.min(replicas, instance.replicas) },
      resources,
    );
    if (noRoom.length > 0) {
      throw planChangeRefused(
        `${move}: not every node holding a replica has room for the new size: ${noRoom.join('; ')}`,
      );
    }
  }

  const adding = replicas > instance.replicas;
  const waitsForReplicas = adding && !sameIo(current, policies.io);
  const count =
    replicas === instance.replicas
      ? `${replicas} replica${replicas === 1 ? '' : 's'}`
      : `${instance.replicas} → ${replicas} replicas`;
  const shape = resized
    ? `${count}; each ${formatResources(instance.resources)} → ${formatResources(resources)}`
    : count;
  return {
    planId: to.plan.id,
    planName: to.plan.name,
    replicas,
    resources,
    parameters,
    io: waitsForReplicas ? current : policies.io,
    ...(waitsForReplicas ? { pendingIo: policies.io } : {}),
    failover: policies.failover,
    description: `changing plan ${from.plan.name} → ${to.plan.name} (${shape})`,
  };
}
