import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { requireInstance } from '../instance-lookup.js';
import { operatorOf } from '../operator-input.js';
import { parseRelocationBody, relocationsOf, requestRelocation } from '../relocation-requests.js';

type InstanceParams = { Params: { id: string } };

/**
 * Planned relocation of a replica to another node (`sf relocate`): the broker only records
 * the request; the controller runs it and reports progress in the same record.
 */
export function relocationRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.post<InstanceParams>('/sf/v1/instances/:id/relocate', async (request, reply) => {
    const ask = parseRelocationBody(request.body);
    const by = operatorOf(request);
    const instance = await requireInstance(ctx, request.params.id);
    const record = await requestRelocation(ctx, instance.value, ask, by);
    request.log.info(
      { instanceId: record.instanceId, ordinal: record.ordinal, from: record.from, to: record.to ?? null, by },
      'relocation requested',
    );
    return reply.code(202).send(record);
  });

  app.get<InstanceParams>('/sf/v1/instances/:id/relocations', async (request) => {
    const instance = await requireInstance(ctx, request.params.id);
    return relocationsOf(ctx, instance.value.id);
  });
}
