import type { OperationRecord } from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { checkHints } from '../instance-checks.js';
import { notFound } from '../osb-errors.js';
import { speaks } from '../osb-version.js';
import { idParams, keySegmentParam, stringField } from '../request-checks.js';

/**
 * `Retry-After` on an operation in progress (OSB 2.15): provisions and updates take
 * seconds to minutes, and a platform polling more often learns nothing new.
 */
export const pollAfterSeconds = 2;

const pollQuery = {
  type: 'object',
  properties: { service_id: stringField, plan_id: stringField, operation: stringField },
};

/**
 * The body of `last_operation`. `instance_usable` and `update_repeatable` belong to failed
 * updates and deprovisions only (OSB: MUST NOT be present for other operations), and only
 * platforms of 2.16 and later know them.
 */
function operationBody(operation: OperationRecord, outcome: boolean) {
  const body: { state: string; description: string; instance_usable?: boolean; update_repeatable?: boolean } = {
    state: operation.state,
    // OSB: if present, a non-empty string.
    description: operation.description || operation.state,
  };
  if (outcome && operation.state === 'failed' && operation.type !== 'provision') {
    body.instance_usable = operation.instanceUsable ?? true;
    if (operation.type === 'update') body.update_repeatable = operation.updateRepeatable ?? true;
  }
  return body;
}

/**
 * Polling: `GET …/last_operation` of an instance and of a binding.
 *
 * | instance                      | answer                                                  |
 * |-------------------------------|---------------------------------------------------------|
 * | exists                        | 200 `{state, description}` (+ Retry-After in progress)  |
 * | absent, tombstone (deleted)   | 410 `{}`: the deprovision is done                       |
 * | absent, never existed         | 404 NotFound                                            |
 */
export function lastOperationRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.get<{
    Params: { instance_id: string };
    Querystring: { service_id?: string; plan_id?: string; operation?: string };
  }>(
    '/v2/service_instances/:instance_id/last_operation',
    { schema: { params: idParams('instance_id'), querystring: pollQuery } },
    async (request, reply) => {
      const id = keySegmentParam(request.params.instance_id, 'instance id');
      const current = await ctx.instances.get(id);
      if (!current) {
        // The controller puts the tombstone in the transaction that deletes the instance,
        // so an instance is never both absent and unrecorded while its lease lasts.
        const tombstone = await ctx.instances.tombstone(id);
        if (!tombstone) throw notFound(`instance ${id} does not exist`);
        checkHints(tombstone, request.query);
        return reply.code(410).send({});
      }
      checkHints(current.value, request.query);
      const operation = current.value.operation;
      if (operation.state === 'in progress' && speaks(request, 'retryAfter')) {
        reply.header('Retry-After', String(pollAfterSeconds));
      }
      return operationBody(operation, speaks(request, 'operationOutcome'));
    },
  );

  // Bindings are created and deleted synchronously (never 202), so a platform has no
  // reason to poll one; if it does, a binding that exists is done, one that does not is 404.
  app.get<{
    Params: { instance_id: string; binding_id: string };
    Querystring: { service_id?: string; plan_id?: string; operation?: string };
  }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation',
    { schema: { params: idParams('instance_id', 'binding_id'), querystring: pollQuery } },
    async (request) => {
      const instanceId = keySegmentParam(request.params.instance_id, 'instance id');
      const bindingId = keySegmentParam(request.params.binding_id, 'binding id');
      const instance = (await ctx.instances.get(instanceId))?.value;
      const binding = instance ? await ctx.bindings.get(instanceId, bindingId) : undefined;
      if (!instance || !binding) throw notFound(`binding ${bindingId} of instance ${instanceId} does not exist`);
      checkHints(instance, request.query);
      return { state: 'succeeded', description: 'the binding was created synchronously' };
    },
  );
}
