import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';

/** `GET /v2/catalog`: the `osb` part of every catalog entry, as loaded at startup. */
export function catalogRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const document = ctx.catalog.osbCatalog();
  app.get('/v2/catalog', async () => document);
}
