import { type Etcd3, json, type Keyspace, type NodeAllocation, replicaId, type Versioned } from '@service-foundry/core';

/*
 * Placing replicas lives in transactions/ (lock-nodes.ts, commit-placements.ts): one
 * request locks many nodes, one request commits each node's placements as a nested
 * transaction. What remains here is giving capacity back.
 */

/**
 * Returns a removed replica's capacity to its node and forgets its placement, once its
 * agent has deleted the assignment. Compares the ledger's revision, so it cannot undo a
 * placement committed meanwhile.
 */
export async function release(
  client: Etcd3,
  keys: Keyspace,
  allocation: Versioned<NodeAllocation>,
  instanceId: string,
  ordinal: number,
): Promise<boolean> {
  const replicas = { ...allocation.value.replicas };
  delete replicas[replicaId(instanceId, ordinal)];
  const res = await client
    .if(allocation.key, 'Mod', '==', allocation.modRevision)
    .and(keys.assignment(allocation.value.node, instanceId, ordinal), 'Version', '==', 0)
    .then(
      client.put(allocation.key).value(json({ node: allocation.value.node, replicas })),
      client.delete().key(keys.placement(instanceId, ordinal)),
    )
    .commit();
  return res.succeeded;
}
