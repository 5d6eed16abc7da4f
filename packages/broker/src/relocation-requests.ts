import type { RelocationsView } from '@service-foundry/api';
import {
  ErrorCodes,
  type InstanceRecord,
  isKeySegment,
  json,
  nodeCodec,
  nodeControlCodec,
  nodeFenceCodec,
  type PlacementRecord,
  placementCodec,
  primaryCodec,
  type RelocationRecord,
  readPrefix,
  readRecord,
  relocationCodec,
  transferStatusCodec,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { BodyProblems } from './operator-input.js';
import { conflict, OsbError } from './osb-errors.js';

/** What `POST /sf/v1/instances/:id/relocate` asks for, validated. */
export interface RelocationAsk {
  ordinal?: number;
  to?: string;
  keepSource: boolean;
}

/** Higher than any replica count a plan allows; only bounds the number in the key. */
const maxOrdinal = 999;

/** Phases after which a replica may be relocated again. */
const finished: ReadonlySet<RelocationRecord['phase']> = new Set(['done', 'failed']);

export function parseRelocationBody(body: unknown): RelocationAsk {
  const problems = new BodyProblems('relocation request');
  const fields = problems.fields(body, ['ordinal', 'to', 'keep_source']);
  const { ordinal, to, keep_source: keepSource } = fields;
  const validOrdinal =
    typeof ordinal === 'number' && Number.isInteger(ordinal) && ordinal >= 0 && ordinal <= maxOrdinal;
  if (ordinal !== undefined && !validOrdinal) problems.add(`ordinal must be an integer from 0 to ${maxOrdinal}`);
  if (to !== undefined && (typeof to !== 'string' || !isKeySegment(to))) problems.add('to must be a node name');
  if (keepSource !== undefined && typeof keepSource !== 'boolean') problems.add('keep_source must be true or false');
  problems.fail();
  return {
    ...(ordinal === undefined ? {} : { ordinal: ordinal as number }),
    ...(to === undefined ? {} : { to: to as string }),
    keepSource: keepSource === true,
  };
}

const unsuitable = (description: string) => new OsbError(422, 'UnsuitableNode', description, ErrorCodes.invalidInput);

/** Why `to` cannot take replica `ordinal` of `instance`, or undefined when it can. */
async function targetProblem(
  ctx: BrokerContext,
  instance: InstanceRecord,
  placements: PlacementRecord[],
  ordinal: number,
  to: string,
): Promise<string | undefined> {
  const { client, keys } = ctx;
  const replica = `replica ${ordinal} of ${instance.name}`;
  const current = placements.find((p) => p.ordinal === ordinal);
  if (current?.node === to) return `${replica} is already on node ${to}`;
  const [node, control, fence] = await Promise.all([
    readRecord(client, nodeCodec, keys.node(to)),
    readRecord(client, nodeControlCodec, keys.nodeControl(to)),
    readRecord(client, nodeFenceCodec, keys.fence(to)),
  ]);
  if (!node) return `node ${to} is not live: no agent holds its lease (see \`sf nodes\`)`;
  const fenceState = fence?.value.state;
  if (fenceState === 'fenced' || fenceState === 'fencing') return `node ${to} is ${fenceState}`;
  if (control?.value.draining) return `node ${to} is being drained (${control.value.reason})`;
  if (control?.value.cordoned) return `node ${to} is cordoned (${control.value.reason}); uncordon it first`;
  // I5: no two replicas of one instance on one node.
  const sibling = placements.find((p) => p.node === to && p.ordinal !== ordinal);
  if (sibling)
    return `replica ${sibling.ordinal} of ${instance.name} is on node ${to}; two replicas of one instance never share a node`;
  return undefined;
}

/**
 * Records a planned relocation of one replica (`relocations/<id>/<ordinal>`) for the
 * controller. One transaction compares the placement the request was judged on and the
 * relocation record it replaces, so of two concurrent requests one loses (409), and a
 * replica moved meanwhile is not moved again from a node it no longer is on.
 */
export async function requestRelocation(
  ctx: BrokerContext,
  instance: InstanceRecord,
  ask: RelocationAsk,
  by: string,
): Promise<RelocationRecord> {
  const { client, keys } = ctx;
  if (instance.phase !== 'ready') throw conflict(`instance ${instance.name} is ${instance.phase}`);
  const [primary, placed] = await Promise.all([
    readRecord(client, primaryCodec, keys.primary(instance.id)),
    readPrefix(client, placementCodec, keys.instancePlacements(instance.id)),
  ]);
  const ordinal = ask.ordinal ?? primary?.value.ordinal ?? 0;
  const placementKey = keys.placement(instance.id, ordinal);
  const placement = placed.items.get(placementKey);
  if (!placement) throw conflict(`replica ${ordinal} of ${instance.name} is not placed on any node`);
  if (ask.to !== undefined) {
    const placements = [...placed.items.values()].map((p) => p.value);
    const problem = await targetProblem(ctx, instance, placements, ordinal, ask.to);
    if (problem) throw unsuitable(problem);
  }
  const relocationKey = keys.relocation(instance.id, ordinal);
  const existing = await readRecord(client, relocationCodec, relocationKey);
  if (existing && !finished.has(existing.value.phase)) {
    const { phase, from, to } = existing.value;
    throw conflict(
      `replica ${ordinal} of ${instance.name} is already being relocated from ${from}${to ? ` to ${to}` : ''} (phase ${phase})`,
    );
  }
  const now = new Date().toISOString();
  const record: RelocationRecord = {
    instanceId: instance.id,
    ordinal,
    from: placement.value.node,
    ...(ask.to === undefined ? {} : { to: ask.to }),
    keepSource: ask.keepSource,
    phase: 'requested',
    message: 'requested',
    reason: 'operator',
    requestedBy: by,
    requestedAt: now,
    updatedAt: now,
  };
  const res = await client
    .if(placementKey, 'Mod', '==', placement.modRevision)
    .and(relocationKey, 'Mod', '==', existing?.modRevision ?? '0')
    .then(client.put(relocationKey).value(json(record)))
    .commit();
  if (!res.succeeded) {
    throw conflict(`replica ${ordinal} of ${instance.name} was moved or relocated meanwhile; look again and retry`);
  }
  const target = ask.to ?? 'a node the controller picks';
  await ctx.events.record(
    'relocation-requested',
    `relocation of replica ${ordinal} of "${instance.name}" from ${record.from} to ${target} requested by ${by}`,
    { instanceId: instance.id, node: record.from },
  );
  return record;
}

/** Every relocation record of the instance and every transfer its replicas' volumes are in. */
export async function relocationsOf(ctx: BrokerContext, instanceId: string): Promise<RelocationsView> {
  const { client, keys } = ctx;
  const [relocations, transfers] = await Promise.all([
    readPrefix(client, relocationCodec, keys.instanceRelocations(instanceId)),
    // keys.transfer() names one transfer; its instance prefix is the same path one level up.
    readPrefix(client, transferStatusCodec, `${keys.transfers()}${instanceId}/`),
  ]);
  return {
    relocations: [...relocations.items.values()].map((r) => r.value).sort((a, b) => a.ordinal - b.ordinal),
    transfers: [...transfers.items.values()]
      .map((t) => t.value)
      .sort((a, b) => a.ordinal - b.ordinal || a.node.localeCompare(b.node)),
  };
}
