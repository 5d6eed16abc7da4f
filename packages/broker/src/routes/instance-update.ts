import { isDeepStrictEqual } from 'node:util';
import { ErrorCodes, type InstanceRecord, type IoPolicy, type UpdateRequest } from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { checkDurability, checkHints, operationRecord } from '../instance-checks.js';
import { askedMaintenanceVersion, requirePlanVersion } from '../maintenance-info.js';
import { asyncRequired, notFound, OsbError, toOsbError } from '../osb-errors.js';
import { type ResolvedPlan, validateParameters } from '../params-validation.js';
import { planChange } from '../plan-change.js';
import { liveUpdatableParameters, resolvePolicies } from '../policies.js';
import { acceptsIncomplete, idParams, keySegmentParam, stringField } from '../request-checks.js';
import { checkUpdatable, runningOperation, writeUpdate } from '../update-write.js';
import { checkUpgrade, findUpgrade, upgradeRefused } from '../upgrade.js';

interface UpdateBody {
  service_id: string;
  plan_id?: string;
  context?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
  previous_values?: Record<string, unknown>;
  maintenance_info?: Record<string, unknown>;
}

const updateBody = {
  type: 'object',
  required: ['service_id'],
  properties: {
    service_id: stringField,
    plan_id: stringField,
    context: { type: 'object' },
    parameters: { type: 'object' },
    previous_values: { type: 'object' },
    maintenance_info: { type: 'object' },
  },
};

/** A change OSB lets the broker refuse: 422, and repeating the same request fails again. */
function notSupported(error: string, description: string): OsbError {
  return new OsbError(422, error, description, ErrorCodes.invalidInput).withOutcome({
    instanceUsable: true,
    updateRepeatable: false,
  });
}

/**
 * OSB 2.16 lets an update's error say whether the instance still serves and whether the
 * same request may succeed later. A refused update changed nothing, so the instance is as
 * usable as before; only waiting (ConcurrencyError) or a failure of ours (5xx) may pass.
 */
function asUpdateError(thrown: unknown, instance: InstanceRecord | undefined): unknown {
  const error = toOsbError(thrown);
  if (error.outcome || !instance) return error;
  const passes = error.error === 'ConcurrencyError' || error.status >= 500;
  return error.withOutcome({ instanceUsable: instance.phase !== 'failed', updateRepeatable: passes });
}

/**
 * `PATCH /v2/service_instances/:id`. What may change: `durability` and `local_io`, live;
 * the plan, between plans of one service with the same resources per replica (a change
 * of replica count, plan-change.ts); and the maintenance version (an upgrade onto the
 * catalog's image, upgrade.ts), one of the three at a time. All are async operations the
 * controller finishes.
 *
 * | instance                                   | request                                | answer                    |
 * |--------------------------------------------|----------------------------------------|---------------------------|
 * | absent                                     | any                                    | 404                       |
 * | provisioning or deprovisioning             | any                                    | 422 ConcurrencyError      |
 * | failed provision                           | any                                    | 422 InstanceFailed        |
 * | ready                                      | invalid (schema, hints, durability)    | 400                       |
 * | ready                                      | version / fixed parameter              | 422 (not supported)       |
 * | ready                                      | a plan change plan-change.ts refuses   | 422 PlanChangeNotSupported |
 * | ready                                      | maintenance_info not the catalog's     | 422 MaintenanceInfoConflict |
 * | ready, on an older version or image        | the plan's maintenance_info and a parameter change | 422 MaintenanceUpdateNotSupported |
 * | a switchover under way                     | an upgrade                             | 422 ConcurrencyError      |
 * | update in progress                         | the same request again                 | 202, same operation       |
 * | update (or restore) in progress            | another request                        | 422 ConcurrencyError      |
 * | ready, nothing in progress                 | nothing differs                        | 200 `{}`                  |
 * | ready, nothing in progress                 | a live change, no accepts_incomplete   | 422 AsyncRequired         |
 * | ready, nothing in progress                 | a live change, a plan change, an upgrade | 202, new operation      |
 */
export function instanceUpdateRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.patch<{ Params: { instance_id: string }; Querystring: { accepts_incomplete?: string }; Body: UpdateBody }>(
    '/v2/service_instances/:instance_id',
    {
      schema: {
        params: idParams('instance_id'),
        querystring: { type: 'object', properties: { accepts_incomplete: stringField } },
        body: updateBody,
      },
    },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const body = request.body;
      const instance = (await ctx.instances.get(id))?.value;
      if (!instance) throw notFound(`instance ${id} does not exist`);
      try {
        checkHints(instance, { service_id: body.service_id });
        checkUpdatable(instance);
        const plan = ctx.plans.resolve(instance.serviceId, instance.planId);
        const asked: UpdateRequest = {
          ...(body.plan_id === undefined ? {} : { planId: body.plan_id }),
          ...(body.parameters === undefined ? {} : { parameters: body.parameters }),
        };
        const version = askedMaintenanceVersion(request, body.maintenance_info);
        if (version !== undefined) asked.maintenanceVersion = version;
        const target =
          asked.planId !== undefined && asked.planId !== instance.planId
            ? ctx.plans.resolve(instance.serviceId, asked.planId)
            : undefined;
        const parameters = target ? undefined : checkRequest(instance, plan, asked);
        const running = runningOperation(instance, asked);
        if (running !== undefined) return reply.code(202).send({ operation: running });
        let planned: Planned | undefined;
        if (target) {
          const next = await planChange(ctx, instance, plan, target, asked.parameters, asked.maintenanceVersion);
          if (!acceptsIncomplete(request.query)) throw asyncRequired('changing the plan');
          const { description, pendingIo, ...change } = next;
          planned = { change, description, kind: 'instance-update', ...(pendingIo ? { pendingIo } : {}) };
        } else {
          planned = await samePlanChange(ctx, instance, plan, asked, parameters ?? instance.parameters);
          // Nothing asked for differs from what the instance has: OSB allows 200 for "no effect".
          if (!planned) return {};
          if (!acceptsIncomplete(request.query)) {
            throw asyncRequired(planned.kind === 'instance-upgrade' ? 'upgrading' : 'updating');
          }
        }
        const { change, description, kind, pendingIo } = planned;
        const operation = operationRecord('update', description, {
          request: asked,
          ...(pendingIo ? { pendingIo } : {}),
        });
        const written = await writeUpdate(ctx, instance, asked, {
          change,
          operation,
          shapeBound: target !== undefined || kind === 'instance-upgrade',
          event: { kind, message: description },
        });
        if (written.started) request.log.info({ instanceId: id, description }, 'update accepted');
        return reply.code(202).send({ operation: written.operation.id });
      } catch (error) {
        throw asUpdateError(error, instance);
      }
    },
  );
}

/** An update the route is about to start. */
interface Planned {
  change: Partial<InstanceRecord>;
  description: string;
  /** The event that records its start. */
  kind: 'instance-update' | 'instance-upgrade';
  pendingIo?: IoPolicy;
}

/**
 * A change within the instance's plan: an upgrade (the plan's maintenance version asked
 * for, while the instance runs an older version or image), or live parameters; one at a
 * time. Undefined when nothing asked for differs from what the instance has.
 */
async function samePlanChange(
  ctx: BrokerContext,
  instance: InstanceRecord,
  plan: ResolvedPlan,
  asked: UpdateRequest,
  merged: Record<string, unknown>,
): Promise<Planned | undefined> {
  const changed = Object.keys(asked.parameters ?? {}).filter(
    (key) => !isDeepStrictEqual(asked.parameters?.[key], instance.parameters[key]),
  );
  // checkRequest refused any version but the plan's: asking for it upgrades when needed.
  const upgrade = asked.maintenanceVersion === undefined ? undefined : await findUpgrade(ctx, instance, plan);
  if (upgrade) {
    if (changed.length > 0) {
      throw upgradeRefused(
        `instance ${instance.id} ${upgrade.reason}: an upgrade and a change of ${changed.join(', ')} are done one at a time; send the upgrade (maintenance_info alone) first, then the parameters`,
      );
    }
    await checkUpgrade(ctx, instance, upgrade);
    return { change: upgrade.change, description: upgrade.description, kind: 'instance-upgrade' };
  }
  if (changed.length === 0) return undefined;
  const io = resolvePolicies(plan.sizing, merged).io;
  // Checked against the instance's own replica count: only a plan change changes it.
  checkDurability(ctx, plan, instance.replicas, io);
  return {
    change: { parameters: merged, io },
    description: `applying ${changed.join(', ')} to every replica`,
    kind: 'instance-update',
  };
}

/**
 * Refuses what cannot be asked of this instance within its plan (400 invalid, 422 not
 * supported or not the catalog's maintenance version); returns the parameters it would have.
 */
function checkRequest(instance: InstanceRecord, plan: ResolvedPlan, asked: UpdateRequest): Record<string, unknown> {
  const service = plan.entry.osb.name;
  // The plan's version is the only one an instance can move to (an upgrade, or nothing).
  if (asked.maintenanceVersion !== undefined) requirePlanVersion(plan.plan, service, asked.maintenanceVersion);
  if (asked.parameters === undefined) return instance.parameters;
  validateParameters(
    plan,
    plan.validators['instance update'] ? 'instance update' : 'instance create',
    asked.parameters,
  );
  const fixed = Object.keys(asked.parameters).filter(
    (key) => !liveUpdatableParameters.has(key) && !isDeepStrictEqual(asked.parameters?.[key], instance.parameters[key]),
  );
  if (fixed.length > 0) {
    throw notSupported(
      'UpdateNotSupported',
      `only ${[...liveUpdatableParameters].join(' and ')} can change on an existing instance (asked to change: ${fixed.join(', ')})`,
    );
  }
  return { ...instance.parameters, ...asked.parameters };
}
