import { isDeepStrictEqual } from 'node:util';
import { ErrorCodes, type InstanceRecord, type IoPolicy, type UpdateRequest } from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { checkDurability, checkHints, operationRecord } from '../instance-checks.js';
import { askedMaintenanceVersion, requirePlanVersion } from '../maintenance-info.js';
import { asyncRequired, concurrencyError, notFound, OsbError, toOsbError } from '../osb-errors.js';
import { type ResolvedPlan, validateParameters } from '../params-validation.js';
import { planChange } from '../plan-change.js';
import { liveUpdatableParameters, resolvePolicies } from '../policies.js';
import { acceptsIncomplete, idParams, keySegmentParam, stringField } from '../request-checks.js';

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

/** Two update requests ask for the same thing (absent parameters and `{}` both change nothing). */
function sameRequest(a: UpdateRequest | undefined, b: UpdateRequest): boolean {
  if (!a) return false;
  return (
    a.planId === b.planId &&
    a.maintenanceVersion === b.maintenanceVersion &&
    isDeepStrictEqual(a.parameters ?? {}, b.parameters ?? {})
  );
}

/**
 * `PATCH /v2/service_instances/:id`. What may change: `durability` and `local_io`, live,
 * and the plan, between plans of one service with the same resources per replica (a change
 * of replica count, plan-change.ts). Both are async operations the controller finishes.
 * Maintenance updates (a new image version) are refused with 422 until they are built.
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
 * | update in progress                         | the same request again                 | 202, same operation       |
 * | update (or restore) in progress            | another request                        | 422 ConcurrencyError      |
 * | ready, nothing in progress                 | nothing differs                        | 200 `{}`                  |
 * | ready, nothing in progress                 | a live change, no accepts_incomplete   | 422 AsyncRequired         |
 * | ready, nothing in progress                 | a live change or a plan change         | 202, new operation        |
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
        if (instance.phase === 'provisioning' || instance.phase === 'deprovisioning') {
          throw concurrencyError(`instance ${id} is ${instance.phase}; wait until that finishes`);
        }
        if (instance.phase === 'failed') {
          throw new OsbError(
            422,
            'InstanceFailed',
            `instance ${id} failed to provision (${instance.message}); deprovision it`,
            ErrorCodes.conflict,
          ).withOutcome({ instanceUsable: false, updateRepeatable: false });
        }
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
        if (instance.operation.state === 'in progress') {
          if (instance.operation.type === 'update' && sameRequest(instance.operation.request, asked)) {
            return reply.code(202).send({ operation: instance.operation.id });
          }
          throw concurrencyError(`instance ${id} has an operation in progress (${instance.operation.description})`);
        }
        let change: Pick<InstanceRecord, 'parameters' | 'io'> & Partial<InstanceRecord>;
        let description: string;
        let pendingIo: IoPolicy | undefined;
        if (target) {
          const next = await planChange(ctx, instance, plan, target, asked.parameters, asked.maintenanceVersion);
          if (!acceptsIncomplete(request.query)) throw asyncRequired('changing the plan');
          const { description: said, pendingIo: later, ...fields } = next;
          change = fields;
          description = said;
          pendingIo = later;
        } else {
          const changed = Object.keys(asked.parameters ?? {}).filter(
            (key) => !isDeepStrictEqual(asked.parameters?.[key], instance.parameters[key]),
          );
          // Nothing asked for differs from what the instance has: OSB allows 200 for "no effect".
          if (changed.length === 0) return {};
          const merged = parameters ?? instance.parameters;
          const io = resolvePolicies(plan.sizing, merged).io;
          // Checked against the instance's own replica count: only a plan change changes it.
          checkDurability(ctx, plan, instance.replicas, io);
          if (!acceptsIncomplete(request.query)) throw asyncRequired('updating');
          change = { parameters: merged, io };
          description = `applying ${changed.join(', ')} to every replica`;
        }
        const operation = operationRecord('update', description, {
          request: asked,
          ...(pendingIo ? { pendingIo } : {}),
        });
        const updated = await ctx.instances.update(id, (current) => {
          if (current.operation.state === 'in progress') {
            // Another broker took the same request a moment ago: answer with its operation.
            if (current.operation.type === 'update' && sameRequest(current.operation.request, asked)) return current;
            throw concurrencyError(`instance ${id} has an operation in progress (${current.operation.description})`);
          }
          if (current.phase !== 'ready') {
            throw concurrencyError(`instance ${id} is ${current.phase}; wait until that finishes`);
          }
          // Checked against the record as read: a plan change computed from another replica
          // count or plan would be wrong.
          if (target && (current.planId !== instance.planId || current.replicas !== instance.replicas)) {
            throw concurrencyError(`instance ${id} changed while this update was checked; try again`);
          }
          return { ...current, ...change, operation };
        });
        if (!updated) throw notFound(`instance ${id} does not exist`);
        if (updated.operation.id === operation.id) {
          request.log.info({ instanceId: id, description }, 'update accepted');
          await ctx.events.record('instance-update', description, { instanceId: id });
        }
        return reply.code(202).send({ operation: updated.operation.id });
      } catch (error) {
        throw asUpdateError(error, instance);
      }
    },
  );
}

/**
 * Refuses what cannot be asked of this instance within its plan (400 invalid, 422 not
 * supported or not the catalog's maintenance version); returns the parameters it would have.
 */
function checkRequest(instance: InstanceRecord, plan: ResolvedPlan, asked: UpdateRequest): Record<string, unknown> {
  const service = plan.entry.osb.name;
  if (asked.maintenanceVersion !== undefined) {
    requirePlanVersion(plan.plan, service, asked.maintenanceVersion);
    if (asked.maintenanceVersion !== instance.maintenanceVersion) {
      throw notSupported(
        'MaintenanceUpdateNotSupported',
        `instance ${instance.id} runs maintenance version ${instance.maintenanceVersion ?? '(unrecorded)'}; moving it to ${asked.maintenanceVersion} is not built yet`,
      );
    }
  }
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
