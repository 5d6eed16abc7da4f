import type { FenceReply, UnfenceReply } from '@service-foundry/api';
import { isKeySegment } from '@service-foundry/core';
import {
  type FenceResult,
  Fencing,
  redactFenceDevices,
  requireKnownNode,
  type UnfenceResult,
} from '@service-foundry/fencing';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { operatorOf } from '../operator-input.js';
import { badRequest, notFound } from '../osb-errors.js';

const maxHistory = 1000;

type NodeParams = { Params: { node: string } };

function nodeOf(request: FastifyRequest<NodeParams>): string {
  const node = request.params.node;
  if (!isKeySegment(node)) throw badRequest(`${JSON.stringify(node.slice(0, 200))} is not a valid node name`);
  return node;
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

function fenceView(result: FenceResult): FenceReply {
  return {
    node: result.node,
    state: result.state,
    level: result.level ?? null,
    reason: result.reason,
    ranDevices: result.ranDevices,
    history: result.history,
  };
}

function unfenceView(result: UnfenceResult): UnfenceReply {
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
 * configuration (validated: only allow-listed `fence_*` agents, with the options they
 * declare; secrets never answered back) and the fence history. Fencing or configuring a
 * node the cluster does not know is a 404 that writes nothing.
 */
export function fencingRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  // The fencing package's defaults: agents from /usr/sbin and packages/fencing/bin only.
  const fencing = new Fencing(ctx.client, ctx.keys, {}, { log: ctx.log, secrets: ctx.secrets });
  const knownNode = (node: string) => requireKnownNode(ctx.client, ctx.keys, node);

  app.post<NodeParams>('/sf/v1/nodes/:node/fence', async (request) => {
    const node = nodeOf(request);
    const body = bodyObject(request.body);
    checkFields(body, ['reason']);
    const by = operatorOf(request);
    const reason = reasonOf(body, `manual fence by ${by}`);
    await knownNode(node);
    const result = await fencing.fence(node, { by, reason });
    return fenceView(result);
  });

  app.post<NodeParams>('/sf/v1/nodes/:node/unfence', async (request) => {
    const node = nodeOf(request);
    const body = bodyObject(request.body);
    checkFields(body, ['reason', 'powerOn']);
    if (body.powerOn !== undefined && typeof body.powerOn !== 'boolean') throw badRequest('powerOn must be a boolean');
    const by = operatorOf(request);
    const reason = reasonOf(body, `manual unfence by ${by}`);
    await knownNode(node);
    const result = await fencing.unfence(node, {
      by,
      reason,
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
    const by = operatorOf(request);
    await knownNode(node);
    // Validation errors (InvalidInputError: schema, agent allow-list, the agent's declared
    // options) become 400s listing every problem; nothing is stored.
    const record = await fencing.store.setDevices(node, request.body, by);
    await ctx.events.record('fence-devices-set', `fence devices of ${node} set by ${by}`, { node });
    return redactFenceDevices(record);
  });

  app.delete<NodeParams>('/sf/v1/nodes/:node/fence-devices', async (request, reply) => {
    const node = nodeOf(request);
    const by = operatorOf(request);
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
