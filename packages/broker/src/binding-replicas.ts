import {
  type Endpoint,
  nodeCodec,
  placementCodec,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  statusCodec,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';

/**
 * Where the instance's running replicas serve, for drivers that make binding users on each
 * server (binding-driver-redis.ts): the node address and published port of their status.
 *
 * The broker logs in there as the instance's admin, so an address is taken only when the
 * scheduler's placement puts the replica on the node that wrote the status and that node
 * registered the address. Otherwise an agent could name any host in a status and receive
 * the admin password of an instance it does not run.
 */
export async function runningReplicas(ctx: BrokerContext, instanceId: string): Promise<Endpoint[]> {
  const [statuses, placements] = await Promise.all([
    readPrefix(ctx.client, statusCodec, ctx.keys.instanceStatuses(instanceId), ctx.log),
    readPrefix(ctx.client, placementCodec, ctx.keys.instancePlacements(instanceId), ctx.log),
  ]);
  const placedOn = new Map([...placements.items.values()].map((p) => [p.value.ordinal, p.value.node]));
  const candidates = [...statuses.items.values()]
    .map((item) => item.value)
    .filter(
      (s): s is ReplicaStatus & { host: string; port: number } =>
        s.state === 'running' &&
        s.role === 'replica' &&
        s.host !== undefined &&
        s.port !== undefined &&
        placedOn.get(s.ordinal) === s.node,
    );
  const registered = new Map<string, string | undefined>();
  for (const node of new Set(candidates.map((s) => s.node))) {
    registered.set(node, (await readRecord(ctx.client, nodeCodec, ctx.keys.node(node)))?.value.address);
  }
  return candidates.filter((s) => registered.get(s.node) === s.host).map((s) => ({ host: s.host, port: s.port }));
}
