import { isDeepStrictEqual } from 'node:util';
import type { InstanceRecord, InstanceScope } from '@service-foundry/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { requirePrincipal } from '../auth.js';
import type { BrokerContext } from '../broker-context.js';
import { checkDurability, checkHints, maintenanceInfoOf, operationRecord } from '../instance-checks.js';
import { provisionScope, sameScope } from '../instance-scope.js';
import { askedMaintenanceVersion, requirePlanVersion } from '../maintenance-info.js';
import { asyncRequired, concurrencyError, conflict, notFound } from '../osb-errors.js';
import { speaks } from '../osb-version.js';
import { desiredReplicas, validateParameters } from '../params-validation.js';
import { resolvePolicies } from '../policies.js';
import { randomPassword } from '../random.js';
import { acceptsIncomplete, contextName, idParams, keySegmentParam, stringField } from '../request-checks.js';
import { provisionImage } from '../upgrade.js';

interface ProvisionBody {
  service_id: string;
  plan_id: string;
  organization_guid?: string;
  space_guid?: string;
  context?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
  maintenance_info?: Record<string, unknown>;
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

const instanceParams = idParams('instance_id');

/** What makes a repeated PUT "identical" (OSB): service, plan, parameters, and the space. */
interface Attributes {
  serviceId: string;
  planId: string;
  parameters: Record<string, unknown>;
  scope: InstanceScope | undefined;
}

/**
 * The answer to a PUT of an id that exists. `synchronous`: the platform did not send
 * `accepts_incomplete=true`, so only a complete answer (200) will do.
 *
 * | existing instance                | answer                                         |
 * |----------------------------------|------------------------------------------------|
 * | other service/plan/params/space  | 409 Conflict                                   |
 * | being deprovisioned              | 422 ConcurrencyError                           |
 * | ready                            | 200 `{}` (nothing to do: complete at once)     |
 * | provisioning or failed, async    | 202 with the original operation                |
 * | provisioning or failed, sync     | 422 AsyncRequired                              |
 */
function answerRepeat(reply: FastifyReply, existing: InstanceRecord, asked: Attributes, synchronous: boolean) {
  const identical =
    existing.serviceId === asked.serviceId &&
    existing.planId === asked.planId &&
    isDeepStrictEqual(existing.parameters, asked.parameters) &&
    sameScope(existing.scope, asked.scope);
  if (!identical) {
    throw conflict(`instance ${existing.id} already exists with a different service, plan, parameters or space`);
  }
  if (existing.phase === 'deprovisioning') throw concurrencyError(`instance ${existing.id} is being deprovisioned`);
  if (existing.phase === 'ready') return reply.code(200).send({});
  if (synchronous) throw asyncRequired('provisioning');
  return reply.code(202).send({ operation: existing.operation.id });
}

/** Provision (PUT), fetch (GET) and deprovision (DELETE) of `/v2/service_instances/:id`. */
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
      const asked = askedMaintenanceVersion(request, body.maintenance_info);
      if (asked !== undefined) requirePlanVersion(plan.plan, service, asked);
      const attributes: Attributes = { serviceId: body.service_id, planId: body.plan_id, parameters, scope };
      if (!acceptsIncomplete(request.query)) {
        // Only a repeat of a finished provision can be answered at once.
        const existing = await ctx.instances.get(id);
        if (existing) return answerRepeat(reply, existing.value, attributes, true);
        throw asyncRequired('provisioning');
      }
      const operation = operationRecord('provision', `provisioning ${replicas} ${service} replica(s)`);
      const maintenanceVersion = plan.plan.maintenance_info?.version;
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
          ...(maintenanceVersion ? { maintenanceVersion } : {}),
          // The image of that version, which the controller keeps every replica on until an upgrade.
          ...provisionImage(plan),
        },
        {
          adminUser: plan.entry.runtime.adminUser,
          adminPassword: randomPassword(),
          ...(plan.entry.replication
            ? { replicationUser: 'sf_replicator', replicationPassword: randomPassword() }
            : {}),
        },
      );
      if (!outcome.created) return answerRepeat(reply, outcome.existing.value, attributes, false);
      request.log.info({ instanceId: id, name, service, plan: plan.plan.name, replicas }, 'provisioning accepted');
      await ctx.events.record('instance-provisioning', `provisioning ${service}/${plan.plan.name} "${name}"`, {
        instanceId: id,
      });
      return reply.code(202).send({ operation: operation.id });
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
      const maintenance = speaks(request, 'maintenanceInfo')
        ? maintenanceInfoOf(instance, ctx.plans.find(instance.serviceId, instance.planId))
        : undefined;
      return {
        service_id: instance.serviceId,
        plan_id: instance.planId,
        parameters: instance.parameters,
        ...(maintenance ? { maintenance_info: maintenance } : {}),
      };
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
        const current = await ctx.instances.get(id);
        if (!current) return reply.code(410).send({});
        checkHints(current.value, request.query);
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
