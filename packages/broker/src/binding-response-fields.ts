import type { FastifyReply, FastifyRequest } from 'fastify';
import { fieldSince, requestMinor } from './osb-version.js';

/** The binding routes whose answers carry fields newer than OSB 2.11. */
const bindingRoutes = new Set(['/v2/service_instances/:instance_id/service_bindings/:binding_id']);

/** Fields of a binding answer and the OSB version that added each. */
const bindingFields: ReadonlyArray<[string, number]> = [['endpoints', fieldSince.endpoints]];

/**
 * preSerialization hook: a binding answer (create, fetch) loses the fields the platform's
 * OSB version does not have, so a 2.14 platform never sees `endpoints`. The binding routes
 * build the newest answer; this is the one place that trims it.
 */
export async function trimBindingFields(
  request: FastifyRequest,
  reply: FastifyReply,
  payload: unknown,
): Promise<unknown> {
  if (reply.statusCode >= 300 || !bindingRoutes.has(request.routeOptions.url ?? '')) return payload;
  if (payload === null || typeof payload !== 'object') return payload;
  const minor = requestMinor(request) ?? 0;
  const dropped = bindingFields.filter(([field, since]) => minor < since && field in payload);
  if (dropped.length === 0) return payload;
  const copy: Record<string, unknown> = { ...(payload as Record<string, unknown>) };
  for (const [field] of dropped) delete copy[field];
  return copy;
}
