import type { Etcd3, Keyspace } from '@service-foundry/core';
import { UnknownNodeError } from './errors.js';

/**
 * True when the cluster knows `node`: a live node record (`nodes/<node>`), an allocation
 * ledger (`allocations/<node>`, which outlives the node's lease), a fence record or fence
 * devices. A dead node is known by its ledger or its fencing keys, so it stays fenceable;
 * a made-up name is not.
 */
export async function isKnownNode(client: Etcd3, keys: Keyspace, node: string): Promise<boolean> {
  const candidates = [keys.node(node), keys.allocation(node), keys.fence(node), keys.fenceDevices(node)];
  const found = await Promise.all(candidates.map((key) => client.get(key).exists()));
  return found.includes(true);
}

/** Throws UnknownNodeError unless {@link isKnownNode}. */
export async function requireKnownNode(client: Etcd3, keys: Keyspace, node: string): Promise<void> {
  if (!(await isKnownNode(client, keys, node))) throw new UnknownNodeError(node);
}
