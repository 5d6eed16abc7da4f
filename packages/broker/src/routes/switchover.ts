import {
  ErrorCodes,
  type InstanceRecord,
  isKeySegment,
  json,
  placementCodec,
  primaryCodec,
  readPrefix,
  readRecord,
  type SwitchoverRecord,
  type SwitchoverReplica,
  statusCodec,
  switchoverCodec,
  type Versioned,
  waitFor,
} from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { requireInstance } from '../instance-lookup.js';
import { BodyProblems, operatorOf } from '../operator-input.js';
import { conflict, notFound, OsbError } from '../osb-errors.js';

type InstanceParams = { Params: { id: string } };

/** What `POST /sf/v1/instances/:id/switchover` asks for: a replica by ordinal or by node, or none. */
export type SwitchoverAsk = { ordinal: number } | { node: string } | Record<string, never>;

/** Higher than any replica count a plan allows; only bounds the number. */
const maxOrdinal = 999;

/**
 * How long the request waits for the controller's first decision, so a refusal (no replica
 * in sync) is the answer to the request itself. A busy or absent controller: 202, and the
 * record says the rest.
 */
const firstDecisionMs = 5000;

export function parseSwitchoverBody(body: unknown): SwitchoverAsk {
  const problems = new BodyProblems('switchover request');
  const { to } = problems.fields(body, ['to']);
  let ask: SwitchoverAsk = {};
  if (typeof to === 'number' || (typeof to === 'string' && /^[0-9]{1,3}$/.test(to))) {
    const ordinal = Number(to);
    if (Number.isInteger(ordinal) && ordinal >= 0 && ordinal <= maxOrdinal) ask = { ordinal };
    else problems.add(`to must be a replica ordinal from 0 to ${maxOrdinal} or a node name`);
  } else if (typeof to === 'string' && isKeySegment(to)) {
    ask = { node: to };
  } else if (to !== undefined) {
    problems.add(`to must be a replica ordinal from 0 to ${maxOrdinal} or a node name`);
  }
  problems.fail();
  return ask;
}

const refused = (description: string) =>
  new OsbError(409, 'SwitchoverRefused', description, ErrorCodes.switchoverRefused);

/**
 * Records a switchover (`switchovers/<id>`) for the controller, which checks again and
 * refuses or carries it out (docs/failover.md#switchover). The target: the replica asked
 * for, else the most advanced running replica. One transaction compares the primary key
 * and the previous switchover record, so of two concurrent requests one loses (409).
 */
export async function requestSwitchover(
  ctx: BrokerContext,
  instance: InstanceRecord,
  ask: SwitchoverAsk,
  by: string,
): Promise<Versioned<SwitchoverRecord>> {
  const { client, keys } = ctx;
  const name = instance.name;
  if (instance.phase !== 'ready') throw conflict(`instance ${name} is ${instance.phase}`);
  if (ctx.catalog.replicationMode(instance.serviceName, instance.planName) !== 'native' || instance.replicas < 2) {
    throw refused(
      `instance ${name} (${instance.serviceName} ${instance.planName}) has no replicas to switch over to; use a replicated plan`,
    );
  }
  const key = keys.switchover(instance.id);
  const [primary, placed, statuses, existing] = await Promise.all([
    readRecord(client, primaryCodec, keys.primary(instance.id)),
    readPrefix(client, placementCodec, keys.instancePlacements(instance.id)),
    readPrefix(client, statusCodec, keys.instanceStatuses(instance.id)),
    readRecord(client, switchoverCodec, key),
  ]);
  if (!primary) throw refused(`instance ${name} has no primary yet`);
  if (existing && existing.value.phase !== 'done' && existing.value.phase !== 'failed') {
    throw conflict(
      `a switchover of ${name} to replica ${existing.value.to.ordinal} is already under way (${existing.value.phase})`,
    );
  }
  const placements = [...placed.items.values()].map((p) => p.value);
  const replicas = [...statuses.items.values()].map((s) => s.value);
  let to: SwitchoverReplica | undefined;
  if ('ordinal' in ask || 'node' in ask) {
    const placement = placements.find((p) => ('ordinal' in ask ? p.ordinal === ask.ordinal : p.node === ask.node));
    const asked = 'ordinal' in ask ? `replica ${ask.ordinal}` : `the replica on node ${ask.node}`;
    if (!placement) throw notFound(`${name} has no ${'ordinal' in ask ? asked : `replica on node ${ask.node}`}`);
    if (placement.ordinal === primary.value.ordinal) throw refused(`${asked} of ${name} is the primary already`);
    to = { ordinal: placement.ordinal, node: placement.node };
  } else {
    const best = replicas
      .filter((s) => s.state === 'running' && s.role === 'replica' && s.ordinal !== primary.value.ordinal)
      .sort((a, b) => {
        const pa = BigInt(a.position ?? '0');
        const pb = BigInt(b.position ?? '0');
        return pa === pb ? a.ordinal - b.ordinal : pa > pb ? -1 : 1;
      })[0];
    if (!best) throw refused(`no replica of ${name} is running: nothing can take over from the primary`);
    to = { ordinal: best.ordinal, node: best.node };
  }
  const now = new Date().toISOString();
  const record: SwitchoverRecord = {
    instanceId: instance.id,
    from: { ordinal: primary.value.ordinal, node: primary.value.node },
    fromEpoch: Number(primary.modRevision),
    to,
    phase: 'requested',
    message: 'requested',
    requestedBy: by,
    requestedAt: now,
    updatedAt: now,
  };
  const res = await client
    .if(keys.primary(instance.id), 'Mod', '==', primary.modRevision)
    .and(key, 'Mod', '==', existing?.modRevision ?? '0')
    .then(client.put(key).value(json(record)))
    .commit();
  if (!res.succeeded) throw conflict(`the primary of ${name} changed, or another switchover was asked for; retry`);
  await ctx.events.record(
    'switchover-requested',
    `switchover of "${name}" from replica ${record.from.ordinal} on ${record.from.node} to replica ${to.ordinal} on ${to.node} requested by ${by}`,
    { instanceId: instance.id, node: record.from.node },
  );
  const revision = res.header.revision;
  const decided = await waitFor(
    async () => {
      const now = await readRecord(client, switchoverCodec, key);
      return now && now.modRevision !== revision ? now : undefined;
    },
    { description: 'the controller to take up the switchover', timeoutMs: firstDecisionMs, intervalMs: 50 },
  ).catch(() => undefined);
  if (decided?.value.phase === 'failed') {
    throw new OsbError(409, 'SwitchoverRefused', decided.value.message, ErrorCodes.switchoverRefused);
  }
  return decided ?? { key, value: record, modRevision: revision, createRevision: revision, lease: '0' };
}

/**
 * Planned primary change (`sf switchover`), under the operator login: the broker records
 * the request and answers 202 with it, or 409 `SF_ERR_SWITCHOVER_REFUSED` with the reason
 * when no replica can take over without losing writes; `GET` reads its progress.
 */
export function switchoverRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  app.post<InstanceParams>('/sf/v1/instances/:id/switchover', async (request, reply) => {
    const ask = parseSwitchoverBody(request.body);
    const by = operatorOf(request);
    const instance = await requireInstance(ctx, request.params.id);
    const record = await requestSwitchover(ctx, instance.value, ask, by);
    request.log.info(
      { instanceId: instance.value.id, from: record.value.from, to: record.value.to, by },
      'switchover requested',
    );
    return reply.code(202).send(record.value);
  });

  app.get<InstanceParams>('/sf/v1/instances/:id/switchover', async (request) => {
    const instance = await requireInstance(ctx, request.params.id);
    const record = await readRecord(ctx.client, switchoverCodec, ctx.keys.switchover(instance.value.id));
    if (!record) throw notFound(`instance ${instance.value.name} has had no switchover`);
    return record.value;
  });
}
