import type { NodeControlView } from '@service-foundry/api';
import {
  allocationCodec,
  isKeySegment,
  json,
  type NodeControlRecord,
  nodeCodec,
  nodeControlCodec,
  readRecord,
  replicaId,
} from '@service-foundry/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { operatorOf } from '../operator-input.js';
import { badRequest, conflict, notFound } from '../osb-errors.js';

type Action = 'cordon' | 'uncordon' | 'drain';
type ControlRequest = FastifyRequest<{ Params: { node: string } }>;

const maxReason = 500;

const next: Record<
  Action,
  (current: NodeControlRecord | undefined) => Pick<NodeControlRecord, 'cordoned' | 'draining'>
> = {
  cordon: (current) => ({ cordoned: true, draining: current?.draining ?? false }),
  drain: () => ({ cordoned: true, draining: true }),
  uncordon: () => ({ cordoned: false, draining: false }),
};

function parse(request: ControlRequest): { node: string; reason: string | undefined; by: string } {
  const node = request.params.node;
  if (!isKeySegment(node)) throw badRequest(`${JSON.stringify(node.slice(0, 200))} is not a valid node name`);
  const body = request.body ?? {};
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => k !== 'reason');
  if (unknown.length)
    throw badRequest(`unknown field ${JSON.stringify(String(unknown[0]).slice(0, 100))}; allowed: reason`);
  const reason = fields.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > maxReason)) {
    throw badRequest(`reason must be a string of at most ${maxReason} characters`);
  }
  return { node, reason, by: operatorOf(request) };
}

function messageFor(action: Action, node: string, remaining: readonly string[]): string {
  if (action === 'uncordon') return `node ${node} takes new replicas again`;
  if (action === 'cordon') {
    if (remaining.length === 0) return `node ${node} takes no new replicas; it holds none`;
    return `node ${node} takes no new replicas; its ${remaining.length} replica${remaining.length === 1 ? ' stays' : 's stay'}`;
  }
  if (remaining.length === 0) return `node ${node} takes no new replicas and holds none: it is drained`;
  return (
    `node ${node} takes no new replicas; ${remaining.length} replica${remaining.length === 1 ? '' : 's'} remain on it ` +
    'and move once volume relocation is available (see `sf nodes` and `sf events`)'
  );
}

/**
 * Operator controls on nodes, written to `node-controls/<node>` for the schedulers:
 * cordon (no new replicas), drain (no new replicas, and what remains is reported until
 * it is gone), uncordon (back to normal). The write compares the control's revision, so
 * two operators acting at once cannot silently undo each other.
 */
export function nodeControlRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  for (const action of ['cordon', 'uncordon', 'drain'] as const) {
    app.post<{ Params: { node: string } }>(
      `/sf/v1/nodes/:node/${action}`,
      async (request): Promise<NodeControlView> => {
        const { node, reason, by } = parse(request);
        const { client, keys } = ctx;
        const [record, allocation, current] = await Promise.all([
          readRecord(client, nodeCodec, keys.node(node)),
          readRecord(client, allocationCodec, keys.allocation(node)),
          readRecord(client, nodeControlCodec, keys.nodeControl(node)),
        ]);
        if (!record && !allocation && !current) throw notFound(`no node ${node} (see \`sf nodes\`)`);
        const control: NodeControlRecord = {
          node,
          ...next[action](current?.value),
          reason: reason ?? `${action} by ${by}`,
          updatedAt: new Date().toISOString(),
          by,
        };
        const key = keys.nodeControl(node);
        const res = await client
          .if(key, 'Mod', '==', current?.modRevision ?? '0')
          .then(client.put(key).value(json(control)))
          .commit();
        if (!res.succeeded) throw conflict(`the controls of node ${node} changed meanwhile; try again`);
        const remaining = Object.values(allocation?.value.replicas ?? {})
          .map((r) => replicaId(r.instanceId, r.ordinal))
          .sort();
        const message = messageFor(action, node, remaining);
        await ctx.events.record(`node-${action}`, `${message} (${by}: ${control.reason})`, { node });
        return { node, control, remaining, message };
      },
    );
  }
}
