import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { CatalogView } from '../catalog-view.js';
import { requestMinor } from '../osb-version.js';

/** `GET /v2/catalog`: the `osb` part of every catalog entry, as loaded at startup, in the platform's OSB version. */
export function catalogRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const view = new CatalogView(ctx.catalog);
  app.get('/v2/catalog', async (request) => view.for(requestMinor(request)));
}
