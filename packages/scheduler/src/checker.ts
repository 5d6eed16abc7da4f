import {
  type Etcd3,
  fitsWithin,
  type Keyspace,
  type NodeAllocation,
  type NodeRecord,
  type PlacementRecord,
  readPrefix,
  replicaId,
  sumAllocated,
} from '@service-foundry/core';

export interface PlacementViolation {
  rule: 'over-capacity' | 'replicas-share-node' | 'placement-without-allocation' | 'allocation-without-placement';
  detail: string;
}

/**
 * Reads etcd once, at one revision's worth of consistency per prefix, and lists every
 * breach of I5 and of "placed exactly once". Used by tests and the scheduler benchmark.
 * Capacity is checked against `capacities` when given (nodes that have gone keep their
 * declared size), else against live node records.
 */
export async function checkPlacements(
  client: Etcd3,
  keys: Keyspace,
  capacities?: Map<string, NodeRecord['capacity']>,
): Promise<PlacementViolation[]> {
  const [allocations, placements, nodes] = await Promise.all([
    readPrefix<NodeAllocation>(client, keys.allocations()),
    readPrefix<PlacementRecord>(client, keys.placements()),
    readPrefix<NodeRecord>(client, keys.nodes()),
  ]);
  const violations: PlacementViolation[] = [];
  const sizes = capacities ?? new Map([...nodes.items.values()].map((n) => [n.value.name, n.value.capacity]));
  const allocatedAt = new Map<string, string>();
  for (const { value: allocation } of allocations.items.values()) {
    const capacity = sizes.get(allocation.node);
    const used = sumAllocated(allocation.replicas);
    if (capacity && !fitsWithin(used, capacity)) {
      violations.push({
        rule: 'over-capacity',
        detail: `${allocation.node}: ${JSON.stringify(used)} > ${JSON.stringify(capacity)}`,
      });
    }
    const seen = new Set<string>();
    for (const [id, replica] of Object.entries(allocation.replicas)) {
      if (seen.has(replica.instanceId)) {
        violations.push({ rule: 'replicas-share-node', detail: `${allocation.node}: instance ${replica.instanceId}` });
      }
      seen.add(replica.instanceId);
      allocatedAt.set(id, allocation.node);
    }
  }
  for (const { value: placement } of placements.items.values()) {
    const id = replicaId(placement.instanceId, placement.ordinal);
    const node = allocatedAt.get(id);
    if (node !== placement.node) {
      violations.push({
        rule: 'placement-without-allocation',
        detail: `${id} placed on ${placement.node}, allocated on ${node ?? 'none'}`,
      });
    }
    allocatedAt.delete(id);
  }
  for (const [id, node] of allocatedAt) {
    violations.push({ rule: 'allocation-without-placement', detail: `${id} allocated on ${node}` });
  }
  return violations;
}
