import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { OperatorViews } from '../operator-views.js';
import { badRequest, notFound } from '../osb-errors.js';

const maxEvents = 1000;

/** The operator API used by `sf`: read-only views of cluster state, same basic auth as OSB. */
export function operatorRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const views = new OperatorViews(ctx);

  app.get('/sf/v1/instances', () => views.instances());

  app.get<{ Params: { id: string } }>('/sf/v1/instances/:id', async (request) => {
    const detail = await views.instance(request.params.id);
    if (!detail) throw notFound(`no instance has the id or name ${JSON.stringify(request.params.id.slice(0, 200))}`);
    return detail;
  });

  app.get('/sf/v1/nodes', () => views.nodes());

  app.get('/sf/v1/schedulers', () => views.schedulers());

  app.get<{ Querystring: { limit?: string } }>(
    '/sf/v1/events',
    { schema: { querystring: { type: 'object', properties: { limit: { type: 'string' } } } } },
    (request) => {
      const raw = request.query.limit ?? '50';
      const limit = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(limit >= 1 && limit <= maxEvents)) throw badRequest(`limit must be an integer from 1 to ${maxEvents}`);
      return views.events(limit);
    },
  );
}
