import {
  allocationCodec,
  assignmentCodec,
  decodeKeyValues,
  type Etcd3,
  fitsWithin,
  instanceCodec,
  Keyspace,
  type NodeRecord,
  nodeCodec,
  placementCodec,
  type RecordCodec,
  readPrefix,
  replicaId,
  sumAllocated,
} from '@service-foundry/core';

export interface PlacementViolation {
  rule:
    | 'over-capacity'
    | 'replicas-share-node'
    | 'replicas-share-zone'
    | 'placement-without-allocation'
    | 'allocation-without-placement'
    | 'placement-without-assignment'
    | 'assignment-without-placement'
    | 'replica-not-placed';
  detail: string;
}

export interface CheckOptions {
  /**
   * Node sizes and labels to judge by; nodes that have gone keep their declared size.
   * @default the live node records
   */
  nodes?: ReadonlyMap<string, Pick<NodeRecord, 'capacity' | 'labels'>>;
  /** Also require every replica of every live instance to be placed. @default false */
  expectAllPlaced?: boolean;
}

/**
 * Reads etcd at one revision and lists every breach of I5 and of "placed exactly once":
 * no node over capacity; no two replicas of an instance on one node or in one zone; every
 * placement matched by exactly one ledger entry and one running assignment on its node,
 * and nothing else — a half-written placement or a replica running in two places shows
 * up here. Used by tests and the scheduler benchmark.
 */
export async function checkPlacements(
  client: Etcd3,
  keys: Keyspace,
  options: CheckOptions = {},
): Promise<PlacementViolation[]> {
  const first = await readPrefix(client, nodeCodec, keys.nodes());
  const at = first.revision;
  // Every other prefix at the nodes' revision: one consistent snapshot of the cluster.
  const readKeyed = <T>(codec: RecordCodec<T>, prefix: string) =>
    client
      .getAll()
      .prefix(prefix)
      .revision(at)
      .exec()
      .then((res) => [...decodeKeyValues(codec, res.kvs).items.values()]);
  const read = <T>(codec: RecordCodec<T>, prefix: string) =>
    readKeyed(codec, prefix).then((items) => items.map((i) => i.value));
  const [allocations, placements, assignments, instances] = await Promise.all([
    read(allocationCodec, keys.allocations()),
    read(placementCodec, keys.placements()),
    readKeyed(assignmentCodec, keys.assignments()),
    read(instanceCodec, keys.instances()),
  ]);
  const nodes = options.nodes ?? new Map([...first.items.values()].map((n) => [n.value.name, n.value]));
  const violations: PlacementViolation[] = [];
  const flag = (rule: PlacementViolation['rule'], detail: string) => violations.push({ rule, detail });

  const ledgerNode = new Map<string, string>();
  for (const allocation of allocations) {
    const capacity = nodes.get(allocation.node)?.capacity;
    const used = sumAllocated(allocation.replicas);
    if (capacity && !fitsWithin(used, capacity)) {
      flag('over-capacity', `${allocation.node}: ${JSON.stringify(used)} > ${JSON.stringify(capacity)}`);
    }
    const seen = new Set<string>();
    for (const [id, replica] of Object.entries(allocation.replicas)) {
      if (seen.has(replica.instanceId))
        flag('replicas-share-node', `${allocation.node}: instance ${replica.instanceId}`);
      seen.add(replica.instanceId);
      const other = ledgerNode.get(id);
      if (other) flag('allocation-without-placement', `${id} is in the ledgers of ${other} and ${allocation.node}`);
      ledgerNode.set(id, allocation.node);
    }
  }

  const running = new Map<string, string[]>();
  for (const { key, value: a } of assignments) {
    if (a.desired !== 'running') continue;
    const id = replicaId(a.instanceId, a.ordinal);
    // assignments/<node>/<instance>/<ordinal>: the record itself does not name its node.
    const node = Keyspace.tail(keys.assignments(), key)[0] ?? '';
    running.set(id, [...(running.get(id) ?? []), node]);
  }

  const zonesByInstance = new Map<string, Map<string, number>>();
  const placedCount = new Map<string, number>();
  for (const placement of placements) {
    const id = replicaId(placement.instanceId, placement.ordinal);
    placedCount.set(placement.instanceId, (placedCount.get(placement.instanceId) ?? 0) + 1);
    const node = ledgerNode.get(id);
    if (node !== placement.node) {
      flag('placement-without-allocation', `${id} placed on ${placement.node}, allocated on ${node ?? 'none'}`);
    }
    ledgerNode.delete(id);
    const runningOn = running.get(id) ?? [];
    if (!runningOn.includes(placement.node)) flag('placement-without-assignment', `${id} on ${placement.node}`);
    for (const other of runningOn) {
      if (other !== placement.node)
        flag('assignment-without-placement', `${id} runs on ${other}, placed on ${placement.node}`);
    }
    running.delete(id);
    const zone = nodes.get(placement.node)?.labels.zone;
    if (zone !== undefined) {
      const zones = zonesByInstance.get(placement.instanceId) ?? new Map<string, number>();
      const twin = zones.get(zone);
      if (twin !== undefined) {
        flag(
          'replicas-share-zone',
          `${placement.instanceId}: replicas ${twin} and ${placement.ordinal} in zone ${zone}`,
        );
      }
      zones.set(zone, placement.ordinal);
      zonesByInstance.set(placement.instanceId, zones);
    }
  }
  for (const [id, node] of ledgerNode) flag('allocation-without-placement', `${id} allocated on ${node}`);
  for (const [id, onNodes] of running) flag('assignment-without-placement', `${id} runs on ${onNodes.join(', ')}`);

  if (options.expectAllPlaced) {
    for (const instance of instances) {
      if (instance.phase === 'deprovisioning') continue;
      const placed = placedCount.get(instance.id) ?? 0;
      if (placed !== instance.replicas) {
        flag('replica-not-placed', `${instance.id}: ${placed} of ${instance.replicas} replicas placed`);
      }
    }
  }
  return violations;
}
