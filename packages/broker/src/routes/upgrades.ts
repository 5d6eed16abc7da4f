import type { UpgradeStarted, UpgradeView } from '@service-foundry/api';
import {
  type InstanceRecord,
  Keyspace,
  type ReplicaStatus,
  readPrefix,
  statusCodec,
  type UpdateRequest,
} from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { operationRecord } from '../instance-checks.js';
import { requireInstance } from '../instance-lookup.js';
import { BodyProblems, operatorOf } from '../operator-input.js';
import type { ResolvedPlan } from '../params-validation.js';
import { checkUpdatable, runningOperation, writeUpdate } from '../update-write.js';
import { checkUpgrade, findUpgrade, upgradeFor, upgradeRefused, upgradeView } from '../upgrade.js';

type InstanceParams = { Params: { id: string } };

/** The instance's plan; an instance whose plan left the catalog has nothing to move to. */
function planOf(ctx: BrokerContext, instance: InstanceRecord): ResolvedPlan {
  const plan = ctx.plans.find(instance.serviceId, instance.planId);
  if (!plan) {
    throw upgradeRefused(
      `the catalog no longer has plan ${instance.serviceName}/${instance.planName} of ${instance.name}: there is nothing to upgrade it to`,
    );
  }
  return plan;
}

/**
 * What the OSB `PATCH` records for the same upgrade (`maintenance_info` = the plan's
 * version), so that a platform re-sending it while the operator's upgrade runs gets the
 * same operation.
 */
function upgradeRequest(plan: ResolvedPlan): UpdateRequest {
  const version = plan.plan.maintenance_info?.version;
  return version === undefined ? {} : { maintenanceVersion: version };
}

/**
 * Upgrades under the operator login (`sf upgrade-service`, `sf upgrade-all`): the same
 * checks and the same write as an OSB `PATCH` with the plan's `maintenance_info`
 * (update-write.ts, upgrade.ts). `GET` says what an upgrade would do before it starts.
 */
export function upgradeRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.get<InstanceParams>('/sf/v1/instances/:id/upgrade', async (request): Promise<UpgradeView> => {
    const instance = (await requireInstance(ctx, request.params.id)).value;
    const plan = planOf(ctx, instance);
    return upgradeView(ctx, instance, plan, await findUpgrade(ctx, instance, plan));
  });

  app.post<InstanceParams>('/sf/v1/instances/:id/upgrade', async (request, reply): Promise<UpgradeStarted> => {
    const problems = new BodyProblems('upgrade request');
    problems.fields(request.body, []);
    problems.fail();
    const by = operatorOf(request);
    const instance = (await requireInstance(ctx, request.params.id)).value;
    checkUpdatable(instance);
    const plan = planOf(ctx, instance);
    const asked = upgradeRequest(plan);
    const running = runningOperation(instance, asked);
    const upgrade = running === undefined ? await findUpgrade(ctx, instance, plan) : undefined;
    const view = upgradeView(ctx, instance, plan, upgrade);
    if (running !== undefined) return reply.code(202).send({ ...view, operation: running });
    if (!upgrade) return { ...view, operation: null };
    await checkUpgrade(ctx, instance, upgrade);
    const written = await writeUpdate(ctx, instance, asked, {
      change: upgrade.change,
      operation: operationRecord('update', upgrade.description, { request: asked }),
      shapeBound: true,
      event: { kind: 'instance-upgrade', message: `${upgrade.description} (requested by ${by})` },
    });
    if (written.started) {
      request.log.info({ instanceId: instance.id, description: upgrade.description, by }, 'upgrade accepted');
    }
    return reply.code(202).send({ ...view, operation: written.operation.id });
  });

  /** Every ready instance that qualifies for an upgrade, oldest first (`sf upgrade-all`). */
  app.get('/sf/v1/upgrades', async (): Promise<UpgradeView[]> => {
    const [instances, statuses] = await Promise.all([
      ctx.instances.list(),
      readPrefix(ctx.client, statusCodec, ctx.keys.statuses(), ctx.log),
    ]);
    const byInstance = new Map<string, ReplicaStatus[]>();
    for (const [key, status] of statuses.items) {
      const [instanceId] = Keyspace.tail(ctx.keys.statuses(), key);
      if (instanceId) byInstance.set(instanceId, [...(byInstance.get(instanceId) ?? []), status.value]);
    }
    const views: UpgradeView[] = [];
    for (const { value: instance } of instances.sort((a, b) => a.value.createdAt.localeCompare(b.value.createdAt))) {
      // Only what an upgrade can start on now; the others are listed again once ready and idle.
      if (instance.phase !== 'ready' || instance.operation.state === 'in progress') continue;
      const plan = ctx.plans.find(instance.serviceId, instance.planId);
      if (!plan) continue;
      const upgrade = upgradeFor(ctx, instance, plan, byInstance.get(instance.id) ?? []);
      if (upgrade) views.push(upgradeView(ctx, instance, plan, upgrade));
    }
    return views;
  });
}
