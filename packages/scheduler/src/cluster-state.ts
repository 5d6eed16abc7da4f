import {
  allocationCodec,
  type Etcd3,
  type InstanceRecord,
  instanceCodec,
  type Keyspace,
  type Logger,
  type NodeAllocation,
  type NodeControlRecord,
  type NodeFenceRecord,
  type NodeRecord,
  nodeCodec,
  nodeControlCodec,
  nodeFenceCodec,
  type PlacementRecord,
  PrefixMirror,
  type PrimaryRecord,
  placementCodec,
  primaryCodec,
  type ReplicaStatus,
  type RouteRecord,
  routeCodec,
  type SchedulerMemberRecord,
  type SchedulingStatusRecord,
  schedulerMemberCodec,
  schedulingStatusCodec,
  statusCodec,
  type Versioned,
} from '@service-foundry/core';

/**
 * Watched copies of the prefixes the scheduler and the controller decide on. Decisions
 * read these; every write still compares revisions in etcd, so a copy that lags only
 * costs a failed transaction, never a wrong commit.
 */
export class ClusterState {
  readonly nodes: PrefixMirror<NodeRecord>;
  readonly allocations: PrefixMirror<NodeAllocation>;
  readonly instances: PrefixMirror<InstanceRecord>;
  readonly placements: PrefixMirror<PlacementRecord>;
  readonly statuses: PrefixMirror<ReplicaStatus>;
  readonly primaries: PrefixMirror<PrimaryRecord>;
  readonly routes: PrefixMirror<RouteRecord>;
  readonly nodeControls: PrefixMirror<NodeControlRecord>;
  readonly fences: PrefixMirror<NodeFenceRecord>;
  readonly schedulingStatuses: PrefixMirror<SchedulingStatusRecord>;
  readonly schedulers: PrefixMirror<SchedulerMemberRecord>;
  /**
   * The last record seen of every node, kept after its lease is gone: a dead node's zone
   * still counts for zone anti-affinity, and its capacity for the checker.
   */
  readonly lastKnownNodes = new Map<string, NodeRecord>();
  /** When each known node's key last vanished (lease expired or revoked); cleared when it is back. */
  readonly #lostAt = new Map<string, number>();

  constructor(
    client: Etcd3,
    readonly keys: Keyspace,
    log: Logger,
  ) {
    this.nodes = new PrefixMirror(client, nodeCodec, keys.nodes(), log);
    this.allocations = new PrefixMirror(client, allocationCodec, keys.allocations(), log);
    this.instances = new PrefixMirror(client, instanceCodec, keys.instances(), log);
    this.placements = new PrefixMirror(client, placementCodec, keys.placements(), log);
    this.statuses = new PrefixMirror(client, statusCodec, keys.statuses(), log);
    this.primaries = new PrefixMirror(client, primaryCodec, keys.primaries(), log);
    this.routes = new PrefixMirror(client, routeCodec, keys.routes(), log);
    this.nodeControls = new PrefixMirror(client, nodeControlCodec, keys.nodeControls(), log);
    this.fences = new PrefixMirror(client, nodeFenceCodec, keys.fences(), log);
    this.schedulingStatuses = new PrefixMirror(client, schedulingStatusCodec, keys.schedulingStatuses(), log);
    this.schedulers = new PrefixMirror(client, schedulerMemberCodec, keys.schedulers(), log);
    const nodesPrefix = keys.nodes();
    this.nodes.on('change', (changes) => {
      for (const { key, current } of changes) {
        if (current) {
          this.lastKnownNodes.set(current.value.name, current.value);
          this.#lostAt.delete(current.value.name);
          continue;
        }
        const name = key.slice(nodesPrefix.length);
        if (this.lastKnownNodes.has(name)) this.#lostAt.set(name, Date.now());
      }
    });
  }

  get all(): PrefixMirror<unknown>[] {
    return [
      this.nodes,
      this.allocations,
      this.instances,
      this.placements,
      this.statuses,
      this.primaries,
      this.routes,
      this.nodeControls,
      this.fences,
      this.schedulingStatuses,
      this.schedulers,
    ] as PrefixMirror<unknown>[];
  }

  async start(): Promise<void> {
    await Promise.all(this.all.map((m) => m.start()));
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((m) => m.close()));
  }

  onChange(listener: () => void): void {
    for (const mirror of this.all) mirror.on('change', listener);
  }

  placementsOf(instanceId: string): PlacementRecord[] {
    return this.versionedPlacementsOf(instanceId).map((p) => p.value);
  }

  versionedPlacementsOf(instanceId: string): Versioned<PlacementRecord>[] {
    const out: Versioned<PlacementRecord>[] = [];
    // Placement keys of one instance share a prefix, and ordinals are 0..9: look them up
    // directly rather than scanning every placement in the cluster.
    const instance = this.instances.items.get(this.keys.instance(instanceId))?.value;
    const upTo = Math.max(10, instance?.replicas ?? 0);
    const prefix = this.keys.instancePlacements(instanceId);
    for (let ordinal = 0; ordinal < upTo; ordinal++) {
      const item = this.placements.items.get(`${prefix}${ordinal}`);
      if (item) out.push(item);
    }
    return out;
  }

  statusesOf(instanceId: string): Versioned<ReplicaStatus>[] {
    const prefix = this.keys.instanceStatuses(instanceId);
    const out: Versioned<ReplicaStatus>[] = [];
    for (const [key, item] of this.statuses.items) if (key.startsWith(prefix)) out.push(item);
    return out.sort((a, b) => a.value.ordinal - b.value.ordinal);
  }

  /**
   * How many nodes lost their leases within `windowMs` of `node` (itself included, all still
   * gone), and how many are alive: several leases expiring at once is what an etcd outage
   * looks like when etcd comes back (see controller/failover.ts, "lost together").
   */
  lostTogether(node: string, windowMs: number): { together: number; alive: number } {
    const at = this.#lostAt.get(node);
    let together = 0;
    if (at !== undefined) {
      for (const when of this.#lostAt.values()) if (Math.abs(when - at) <= windowMs) together++;
    }
    return { together, alive: this.nodes.items.size };
  }

  /** A node's record while alive, else the last one seen. */
  nodeRecord(name: string): NodeRecord | undefined {
    return this.nodes.items.get(this.keys.node(name))?.value ?? this.lastKnownNodes.get(name);
  }
}

/**
 * Puts a value this process has just committed at `revision` into its watched copy, so
 * the next decision sees it without waiting for the watch. Only moves forward: when the
 * watch has already passed `revision` it knows better (including later deletes).
 */
export function applyCommitted<T>(mirror: PrefixMirror<T>, item: Versioned<T>): void {
  const revision = BigInt(item.modRevision);
  if (BigInt(mirror.revision) >= revision) return;
  const current = mirror.items.get(item.key);
  if (current && BigInt(current.modRevision) >= revision) return;
  mirror.items.set(item.key, item);
}

/** The delete counterpart of `applyCommitted`. */
export function applyCommittedDelete<T>(mirror: PrefixMirror<T>, key: string, revision: string): void {
  if (BigInt(mirror.revision) >= BigInt(revision)) return;
  const current = mirror.items.get(key);
  if (current && BigInt(current.modRevision) < BigInt(revision)) mirror.items.delete(key);
}
