import { isKeySegment } from '@service-foundry/core';
import { type FenceResult, Fencing, redactFenceDevices, type UnfenceResult } from '@service-foundry/fencing';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { badRequest, notFound } from '../osb-errors.js';

const maxHistory = 1000;
/** Operator names as recorded in the audit trail: no spaces, nothing that needs escaping. */
const operatorName = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

type NodeParams = { Params: { node: string } };

function nodeOf(request: FastifyRequest<NodeParams>): string {
  const node = request.params.node;
  if (!isKeySegment(node)) throw badRequest(`${JSON.stringify(node.slice(0, 200))} is not a valid node name`);
  return node;
}

/**
 * Who asks, for the audit trail: the `X-SF-Operator` header (the CLI sends the operator's
 * login name), else the basic-auth user every request was authenticated as.
 */
function operatorOf(request: FastifyRequest, ctx: BrokerContext): string {
  const header = request.headers['x-sf-operator'];
  if (header === undefined) return ctx.config.username;
  if (typeof header !== 'string' || !operatorName.test(header)) {
    throw badRequest('X-SF-Operator must be 1 to 64 characters: letters, digits and . _ @ + -');
  }
  return header;
}

/** A JSON object body, or an empty one when none was sent. */
function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function reasonOf(body: Record<string, unknown>, fallback: string): string {
  const reason = body.reason ?? fallback;
  if (typeof reason !== 'string' || reason.length > 1000)
    throw badRequest('reason must be a string of at most 1000 characters');
  return reason;
}

function checkFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0)
    throw badRequest(`unknown field ${JSON.stringify(unknown[0])}; allowed: ${allowed.join(', ')}`);
}

function fenceView(result: FenceResult) {
  return {
    node: result.node,
    state: result.state,
    level: result.level ?? null,
    reason: result.reason,
    ranDevices: result.ranDevices,
    history: result.history,
  };
}

function unfenceView(result: UnfenceResult) {
  return {
    node: result.node,
    state: result.state,
    ok: result.ok,
    reason: result.reason,
    ranDevices: result.ranDevices,
    history: result.history,
  };
}

/**
 * The operator API for STONITH: manual fence / unfence (through the same library and
 * transactions as the failover controller, audited in the fence history), fence-device
 * configuration (validated; secrets never answered back) and the fence history.
 */
export function fencingRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const fencing = new Fencing(ctx.client, ctx.keys, {}, { log: ctx.log });

  app.post<NodeParams>('/sf/v1/nodes/:node/fence', async (request) => {
    const node = nodeOf(request);
    const body = bodyObject(request.body);
    checkFields(body, ['reason']);
    const by = operatorOf(request, ctx);
    const result = await fencing.fence(node, { by, reason: reasonOf(body, `manual fence by ${by}`) });
    return fenceView(result);
  });

  app.post<NodeParams>('/sf/v1/nodes/:node/unfence', async (request) => {
    const node = nodeOf(request);
    const body = bodyObject(request.body);
    checkFields(body, ['reason', 'powerOn']);
    if (body.powerOn !== undefined && typeof body.powerOn !== 'boolean') throw badRequest('powerOn must be a boolean');
    const by = operatorOf(request, ctx);
    const result = await fencing.unfence(node, {
      by,
      reason: reasonOf(body, `manual unfence by ${by}`),
      ...(body.powerOn === false ? { powerOn: false } : {}),
    });
    return unfenceView(result);
  });

  app.get<NodeParams>('/sf/v1/nodes/:node/fence', async (request) => {
    const node = nodeOf(request);
    const record = await fencing.store.record(node);
    return record?.value ?? { node, state: 'unfenced', reason: '', by: '', at: '' };
  });

  app.get<NodeParams>('/sf/v1/nodes/:node/fence-devices', async (request) => {
    const node = nodeOf(request);
    const devices = await fencing.store.devices(node);
    if (!devices) throw notFound(`no fence devices configured for node ${node}`);
    return redactFenceDevices(devices);
  });

  app.put<NodeParams>('/sf/v1/nodes/:node/fence-devices', async (request) => {
    const node = nodeOf(request);
    const by = operatorOf(request, ctx);
    // Validation errors (InvalidInputError) become 400s listing every problem.
    const record = await fencing.store.setDevices(node, request.body, by);
    await ctx.events.record('fence-devices-set', `fence devices of ${node} set by ${by}`, { node });
    return redactFenceDevices(record);
  });

  app.delete<NodeParams>('/sf/v1/nodes/:node/fence-devices', async (request, reply) => {
    const node = nodeOf(request);
    const by = operatorOf(request, ctx);
    if (!(await fencing.store.deleteDevices(node))) throw notFound(`no fence devices configured for node ${node}`);
    await ctx.events.record('fence-devices-deleted', `fence devices of ${node} deleted by ${by}`, { node });
    return reply.code(204).send();
  });

  app.get<{ Querystring: { limit?: string; node?: string } }>(
    '/sf/v1/fencing-history',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'string' }, node: { type: 'string' } },
        },
      },
    },
    async (request) => {
      const raw = request.query.limit ?? '50';
      const limit = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(limit >= 1 && limit <= maxHistory)) throw badRequest(`limit must be an integer from 1 to ${maxHistory}`);
      const node = request.query.node;
      if (node !== undefined && !isKeySegment(node)) throw badRequest('node is not a valid node name');
      return fencing.store.history(limit, node);
    },
  );
}
