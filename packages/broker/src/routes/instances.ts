import { isDeepStrictEqual } from 'node:util';
import { ErrorCodes, type InstanceRecord, type IoPolicy, type OperationRecord } from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import { requirePrincipal } from '../auth.js';
import type { BrokerContext } from '../broker-context.js';
import { provisionScope, sameScope } from '../instance-scope.js';
import { asyncRequired, badRequest, concurrencyError, conflict, notFound, OsbError } from '../osb-errors.js';
import { desiredReplicas, type ResolvedPlan, validateParameters } from '../params-validation.js';
import { durabilityProblem, liveUpdatableParameters, resolvePolicies } from '../policies.js';
import { newOperationId, randomPassword } from '../random.js';
import { acceptsIncomplete, contextName, idParams, keySegmentParam, stringField } from '../request-checks.js';

interface ProvisionBody {
  service_id: string;
  plan_id: string;
  organization_guid?: string;
  space_guid?: string;
  context?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
}

interface UpdateBody {
  service_id: string;
  plan_id?: string;
  context?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
}

// Unknown top-level fields are allowed: OSB receivers must ignore fields they do not know.
const provisionBody = {
  type: 'object',
  required: ['service_id', 'plan_id'],
  properties: {
    service_id: stringField,
    plan_id: stringField,
    context: { type: 'object' },
    parameters: { type: 'object' },
    organization_guid: stringField,
    space_guid: stringField,
    maintenance_info: { type: 'object' },
  },
};

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

const instanceParams = idParams('instance_id');

function operationRecord(type: OperationRecord['type'], description: string): OperationRecord {
  return { id: newOperationId(type), type, state: 'in progress', description, startedAt: new Date().toISOString() };
}

/** The durability the parameters ask for must be one the instance can honour (400 otherwise). */
function checkDurability(ctx: BrokerContext, plan: ResolvedPlan, replicas: number, io: IoPolicy): void {
  const streaming = ctx.catalog.replicationMode(plan.entry.osb.name, plan.plan.name) === 'native';
  const problem = durabilityProblem(io.durability, replicas, streaming);
  if (problem) throw badRequest(`invalid parameters for plan ${plan.entry.osb.name}/${plan.plan.name}: ${problem}`);
}

/** OSB's optional `service_id`/`plan_id` hints must name the instance's own, when given. */
function checkHints(instance: InstanceRecord, hints: { service_id?: string; plan_id?: string }): void {
  if (hints.service_id !== undefined && hints.service_id !== instance.serviceId) {
    throw badRequest(`service_id ${JSON.stringify(hints.service_id)} is not the service of instance ${instance.id}`);
  }
  if (hints.plan_id !== undefined && hints.plan_id !== instance.planId) {
    throw badRequest(`plan_id ${JSON.stringify(hints.plan_id)} is not the plan of instance ${instance.id}`);
  }
}

export function instanceRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.put<{ Params: { instance_id: string }; Querystring: { accepts_incomplete?: string }; Body: ProvisionBody }>(
    '/v2/service_instances/:instance_id',
    {
      schema: {
        params: instanceParams,
        querystring: { type: 'object', properties: { accepts_incomplete: stringField } },
        body: provisionBody,
      },
    },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const body = request.body;
      if (!acceptsIncomplete(request.query)) throw asyncRequired('provisioning');
      const plan = ctx.plans.resolve(body.service_id, body.plan_id);
      const parameters = body.parameters ?? {};
      validateParameters(plan, 'instance create', parameters);
      const replicas = desiredReplicas(plan, parameters);
      const policies = resolvePolicies(plan.sizing, parameters);
      checkDurability(ctx, plan, replicas, policies.io);
      const context = body.context ?? {};
      const name = contextName(context, 'instance_name', id);
      const scope = provisionScope(body, requirePrincipal(request));
      const service = plan.entry.osb.name;
      const operation = operationRecord('provision', `provisioning ${replicas} ${service} replica(s)`);
      const outcome = await ctx.instances.create(
        {
          id,
          name,
          serviceId: body.service_id,
          planId: body.plan_id,
          serviceName: service,
          planName: plan.plan.name,
          parameters,
          replicas,
          resources: { ...plan.sizing.resources },
          context,
          createdAt: operation.startedAt,
          phase: 'provisioning',
          message: 'waiting for placement',
          operation,
          ...policies,
          ...(scope ? { scope } : {}),
        },
        {
          adminUser: plan.entry.runtime.adminUser,
          adminPassword: randomPassword(),
          ...(plan.entry.replication
            ? { replicationUser: 'sf_replicator', replicationPassword: randomPassword() }
            : {}),
        },
      );
      if (outcome.created) {
        request.log.info({ instanceId: id, name, service, plan: plan.plan.name, replicas }, 'provisioning accepted');
        await ctx.events.record('instance-provisioning', `provisioning ${service}/${plan.plan.name} "${name}"`, {
          instanceId: id,
        });
        return reply.code(202).send({ operation: operation.id });
      }
      const existing = outcome.existing.value;
      const identical =
        existing.serviceId === body.service_id &&
        existing.planId === body.plan_id &&
        isDeepStrictEqual(existing.parameters, parameters) &&
        sameScope(existing.scope, scope);
      if (!identical) {
        throw conflict(`instance ${id} already exists with a different service, plan, parameters or space`);
      }
      if (existing.phase === 'deprovisioning') throw concurrencyError(`instance ${id} is being deprovisioned`);
      if (existing.phase === 'ready') return reply.code(200).send({});
      return reply.code(202).send({ operation: existing.operation.id });
    },
  );

  app.get<{
    Params: { instance_id: string };
    Querystring: { service_id?: string; plan_id?: string; operation?: string };
  }>(
    '/v2/service_instances/:instance_id/last_operation',
    {
      schema: {
        params: instanceParams,
        querystring: {
          type: 'object',
          properties: { service_id: stringField, plan_id: stringField, operation: stringField },
        },
      },
    },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const current = await ctx.instances.get(id);
      if (!current) {
        // The instance key is deleted only when teardown finished. A platform polling a
        // deprovision (or not naming its operation) learns it is done: 410. A platform
        // polling a provision or update learns the instance does not exist: 404 (OSB 2.17).
        const polled = request.query.operation;
        if (polled === undefined || polled.startsWith('deprovision-')) return reply.code(410).send({});
        throw notFound(`instance ${id} does not exist`);
      }
      checkHints(current.value, request.query);
      const { state, description } = current.value.operation;
      return { state, description: description || state };
    },
  );

  app.get<{ Params: { instance_id: string }; Querystring: { service_id?: string; plan_id?: string } }>(
    '/v2/service_instances/:instance_id',
    {
      schema: {
        params: instanceParams,
        querystring: { type: 'object', properties: { service_id: stringField, plan_id: stringField } },
      },
    },
    async (request) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const instance = (await ctx.instances.get(id))?.value;
      // OSB: an instance whose provisioning has not succeeded does not exist yet.
      if (
        !instance ||
        instance.phase === 'provisioning' ||
        (instance.phase === 'failed' && instance.operation.type === 'provision')
      ) {
        throw notFound(`instance ${id} does not exist or is still being provisioned`);
      }
      checkHints(instance, request.query);
      if (instance.operation.type === 'update' && instance.operation.state === 'in progress') {
        throw concurrencyError(`instance ${id} is being updated`);
      }
      return { service_id: instance.serviceId, plan_id: instance.planId, parameters: instance.parameters };
    },
  );

  app.patch<{ Params: { instance_id: string }; Querystring: { accepts_incomplete?: string }; Body: UpdateBody }>(
    '/v2/service_instances/:instance_id',
    {
      schema: {
        params: instanceParams,
        querystring: { type: 'object', properties: { accepts_incomplete: stringField } },
        body: updateBody,
      },
    },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const body = request.body;
      const instance = (await ctx.instances.get(id))?.value;
      if (!instance) throw notFound(`instance ${id} does not exist`);
      checkHints(instance, { service_id: body.service_id });
      if (instance.phase === 'provisioning' || instance.phase === 'deprovisioning') {
        throw concurrencyError(`instance ${id} is ${instance.phase}; wait until that finishes`);
      }
      const plan = ctx.plans.resolve(instance.serviceId, instance.planId);
      if (body.plan_id !== undefined && body.plan_id !== instance.planId) {
        const target = ctx.plans.resolve(instance.serviceId, body.plan_id);
        throw new OsbError(
          422,
          'PlanChangeNotSupported',
          `instance ${id} cannot move from plan ${plan.plan.name} to ${target.plan.name}: plans of ${plan.entry.osb.name} are not updateable yet`,
          ErrorCodes.invalidInput,
        );
      }
      if (body.parameters !== undefined) {
        validateParameters(
          plan,
          plan.validators['instance update'] ? 'instance update' : 'instance create',
          body.parameters,
        );
        const changed = Object.keys(body.parameters).filter(
          (key) => !isDeepStrictEqual(body.parameters?.[key], instance.parameters[key]),
        );
        const fixed = changed.filter((key) => !liveUpdatableParameters.has(key));
        if (fixed.length > 0) {
          throw new OsbError(
            422,
            'UpdateNotSupported',
            `only ${[...liveUpdatableParameters].join(' and ')} can change on an existing instance (asked to change: ${fixed.join(', ')})`,
            ErrorCodes.invalidInput,
          );
        }
        if (changed.length > 0) {
          const parameters = { ...instance.parameters, ...body.parameters };
          // Checked against the instance's own replica count: the update cannot change it.
          checkDurability(ctx, plan, instance.replicas, resolvePolicies(plan.sizing, parameters).io);
          if (!acceptsIncomplete(request.query)) throw asyncRequired('updating');
          const operation = operationRecord('update', `applying ${changed.join(', ')} to every replica`);
          const updated = await ctx.instances.update(id, (current) => {
            if (current.phase !== 'ready')
              throw concurrencyError(`instance ${id} is ${current.phase}; wait until that finishes`);
            return { ...current, parameters, io: resolvePolicies(plan.sizing, parameters).io, operation };
          });
          if (!updated) throw notFound(`instance ${id} does not exist`);
          request.log.info({ instanceId: id, changed }, 'update accepted');
          await ctx.events.record('instance-update', `updating ${changed.join(', ')}`, { instanceId: id });
          return reply.code(202).send({ operation: operation.id });
        }
      }
      // Nothing asked for differs from what the instance has: OSB allows 200 for "no effect".
      return {};
    },
  );

  app.delete<{
    Params: { instance_id: string };
    Querystring: { service_id: string; plan_id: string; accepts_incomplete?: string };
  }>(
    '/v2/service_instances/:instance_id',
    {
      schema: {
        params: instanceParams,
        querystring: {
          type: 'object',
          required: ['service_id', 'plan_id'],
          properties: { service_id: stringField, plan_id: stringField, accepts_incomplete: stringField },
        },
      },
    },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      if (!acceptsIncomplete(request.query)) {
        // Deleting what does not exist is complete at once; anything else needs async.
        if (!(await ctx.instances.get(id))) return reply.code(410).send({});
        throw asyncRequired('deprovisioning');
      }
      const operation = operationRecord('deprovision', 'deprovisioning: removing replicas, route and data');
      const outcome = await ctx.instances.deprovision(id, operation, (current) => checkHints(current, request.query));
      if (outcome.state === 'absent') return reply.code(410).send({});
      if (outcome.state === 'started') {
        request.log.info({ instanceId: id, name: outcome.record.name }, 'deprovisioning accepted');
        await ctx.events.record('instance-deprovisioning', `deprovisioning "${outcome.record.name}"`, {
          instanceId: id,
        });
      }
      return reply.code(202).send({ operation: outcome.record.operation.id });
    },
  );
}
