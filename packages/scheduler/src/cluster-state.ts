import {
  type Etcd3,
  type InstanceRecord,
  type Keyspace,
  type Logger,
  type NodeAllocation,
  type NodeRecord,
  type PlacementRecord,
  PrefixMirror,
  type PrimaryRecord,
  type ReplicaStatus,
  type RouteRecord,
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

  constructor(
    client: Etcd3,
    readonly keys: Keyspace,
    log: Logger,
  ) {
    this.nodes = new PrefixMirror(client, keys.nodes(), log);
    this.allocations = new PrefixMirror(client, keys.allocations(), log);
    this.instances = new PrefixMirror(client, keys.instances(), log);
    this.placements = new PrefixMirror(client, keys.placements(), log);
    this.statuses = new PrefixMirror(client, keys.statuses(), log);
    this.primaries = new PrefixMirror(client, keys.primaries(), log);
    this.routes = new PrefixMirror(client, keys.routes(), log);
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
    const prefix = this.keys.instancePlacements(instanceId);
    const out: PlacementRecord[] = [];
    for (const [key, item] of this.placements.items) if (key.startsWith(prefix)) out.push(item.value);
    return out.sort((a, b) => a.ordinal - b.ordinal);
  }

  statusesOf(instanceId: string): Array<{ value: ReplicaStatus; modRevision: string }> {
    const prefix = this.keys.instanceStatuses(instanceId);
    const out: Array<{ value: ReplicaStatus; modRevision: string }> = [];
    for (const [key, item] of this.statuses.items) if (key.startsWith(prefix)) out.push(item);
    return out.sort((a, b) => a.value.ordinal - b.value.ordinal);
  }
}
