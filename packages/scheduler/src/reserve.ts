import {
  type AssignmentRecord,
  type Etcd3,
  json,
  type Keyspace,
  type NodeAllocation,
  type PlacementRecord,
  type Resources,
  replicaId,
  type Versioned,
} from '@service-foundry/core';

export interface ReserveRequest {
  instanceId: string;
  ordinal: number;
  resources: Resources;
  serviceName: string;
  planName: string;
  /** Mod revision of the instance record the decision was based on. */
  instanceRevision: string;
  node: string;
  /** The allocation the decision was based on; undefined when the node has none yet. */
  allocation: Versioned<NodeAllocation> | undefined;
  scheduler: string;
}

export interface ReserveResult {
  committed: boolean;
  /** The allocation as written, with its new mod revision, when committed. */
  allocation?: Versioned<NodeAllocation>;
}

/**
 * Commits one placement: the allocation ledger, the placement index and the agent's
 * assignment change together or not at all. The comparisons make a decision taken on a
 * stale view fail instead of over-committing the node or placing a replica twice (I2, I5).
 */
export async function reserve(client: Etcd3, keys: Keyspace, request: ReserveRequest): Promise<ReserveResult> {
  const allocationKey = keys.allocation(request.node);
  const previous: NodeAllocation = request.allocation?.value ?? { node: request.node, replicas: {} };
  const next: NodeAllocation = {
    node: request.node,
    replicas: {
      ...previous.replicas,
      [replicaId(request.instanceId, request.ordinal)]: {
        instanceId: request.instanceId,
        ordinal: request.ordinal,
        resources: request.resources,
      },
    },
  };
  const placement: PlacementRecord = {
    instanceId: request.instanceId,
    ordinal: request.ordinal,
    node: request.node,
    placedAt: new Date().toISOString(),
    scheduler: request.scheduler,
  };
  const assignment: AssignmentRecord = {
    instanceId: request.instanceId,
    ordinal: request.ordinal,
    serviceName: request.serviceName,
    planName: request.planName,
    resources: request.resources,
    desired: 'running',
  };
  const txn = request.allocation
    ? client.if(allocationKey, 'Mod', '==', request.allocation.modRevision)
    : client.if(allocationKey, 'Create', '==', 0);
  const res = await txn
    .and(keys.placement(request.instanceId, request.ordinal), 'Version', '==', 0)
    .and(keys.node(request.node), 'Version', '>', 0)
    .and(keys.instance(request.instanceId), 'Mod', '==', request.instanceRevision)
    .then(
      client.put(allocationKey).value(json(next)),
      client.put(keys.placement(request.instanceId, request.ordinal)).value(json(placement)),
      client.put(keys.assignment(request.node, request.instanceId, request.ordinal)).value(json(assignment)),
    )
    .commit();
  if (!res.succeeded) return { committed: false };
  const revision = res.header.revision;
  return {
    committed: true,
    allocation: {
      key: allocationKey,
      value: next,
      modRevision: revision,
      createRevision: request.allocation?.createRevision ?? revision,
      lease: '0',
    },
  };
}

/**
 * Returns a removed replica's capacity to its node and forgets its placement, once its
 * agent has deleted the assignment. Compares the ledger's revision like `reserve`.
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
