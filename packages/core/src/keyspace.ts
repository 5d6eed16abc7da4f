/**
 * The only place that knows etcd key names. Every key lives under one root so that one
 * etcd can serve several clusters (and tests can run side by side).
 *
 * docs/keyspace.md lists every key with its writer, readers and lifetime.
 */

/** Ids and names used inside keys, as a JSON-schema pattern (record codecs check fields with it). */
export const keySegmentPattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const segment = new RegExp(keySegmentPattern);

/** Ids and names used inside keys: no slashes, nothing that could escape a prefix. */
export function isKeySegment(value: string): boolean {
  return segment.test(value);
}

function check(value: string, what: string): string {
  if (!isKeySegment(value)) throw new TypeError(`${what} ${JSON.stringify(value)} is not a valid key segment`);
  return value;
}

export function replicaId(instanceId: string, ordinal: number): string {
  return `${instanceId}/${ordinal}`;
}

export class Keyspace {
  readonly root: string;

  /** @param root key prefix without trailing slash, e.g. `/sf` */
  constructor(root = '/sf') {
    if (!/^\/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$/.test(root)) throw new TypeError(`bad keyspace root ${root}`);
    this.root = root;
  }

  nodes(): string {
    return `${this.root}/nodes/`;
  }
  node(name: string): string {
    return `${this.nodes()}${check(name, 'node')}`;
  }
  allocations(): string {
    return `${this.root}/allocations/`;
  }
  allocation(node: string): string {
    return `${this.allocations()}${check(node, 'node')}`;
  }
  locks(): string {
    return `${this.root}/locks/`;
  }
  nodeLock(node: string): string {
    return `${this.locks()}nodes/${check(node, 'node')}`;
  }
  /** Live schedulers, each under its session lease (`SchedulerMemberRecord`). */
  schedulers(): string {
    return `${this.root}/schedulers/`;
  }
  scheduler(name: string): string {
    return `${this.schedulers()}${check(name, 'scheduler name')}`;
  }

  /** Operator controls per node (cordon, drain); persistent. */
  nodeControls(): string {
    return `${this.root}/node-controls/`;
  }
  nodeControl(node: string): string {
    return `${this.nodeControls()}${check(node, 'node')}`;
  }
  /** The fencing state of a node (STONITH); persistent until unfenced. */
  fences(): string {
    return `${this.root}/fence/`;
  }
  fence(node: string): string {
    return `${this.fences()}${check(node, 'node')}`;
  }
  /** A node's fence levels and devices, configured by operators. */
  allFenceDevices(): string {
    return `${this.root}/fence-devices/`;
  }
  fenceDevices(node: string): string {
    return `${this.allFenceDevices()}${check(node, 'node')}`;
  }
  fenceHistory(): string {
    return `${this.root}/fence-history/`;
  }
  /** The controller's last health check of a node's fence devices (`FenceCheckRecord`). */
  fenceChecks(): string {
    return `${this.root}/fence-checks/`;
  }
  fenceCheck(node: string): string {
    return `${this.fenceChecks()}${check(node, 'node')}`;
  }
  fenceHistoryEntry(atMs: number, tieBreaker: string): string {
    return `${this.fenceHistory()}${String(atMs).padStart(15, '0')}-${check(tieBreaker, 'history id')}`;
  }

  instances(): string {
    return `${this.root}/instances/`;
  }
  instance(id: string): string {
    return `${this.instances()}${check(id, 'instance id')}`;
  }
  secrets(): string {
    return `${this.root}/secrets/`;
  }
  secret(instanceId: string): string {
    return `${this.secrets()}${check(instanceId, 'instance id')}`;
  }
  routerPorts(): string {
    return `${this.root}/router-ports/`;
  }
  routerPort(port: number): string {
    return `${this.routerPorts()}${port}`;
  }
  /** Instances that existed and were deleted (`InstanceTombstoneRecord`), each under a lease. */
  tombstones(): string {
    return `${this.root}/tombstones/`;
  }
  tombstone(instanceId: string): string {
    return `${this.tombstones()}${check(instanceId, 'instance id')}`;
  }

  /** Why an instance's replicas are not all placed; written by schedulers. */
  schedulingStatuses(): string {
    return `${this.root}/scheduling/`;
  }
  schedulingStatus(instanceId: string): string {
    return `${this.schedulingStatuses()}${check(instanceId, 'instance id')}`;
  }

  placements(): string {
    return `${this.root}/placements/`;
  }
  instancePlacements(instanceId: string): string {
    return `${this.placements()}${check(instanceId, 'instance id')}/`;
  }
  placement(instanceId: string, ordinal: number): string {
    return `${this.instancePlacements(instanceId)}${ordinal}`;
  }

  assignments(): string {
    return `${this.root}/assignments/`;
  }
  nodeAssignments(node: string): string {
    return `${this.assignments()}${check(node, 'node')}/`;
  }
  assignment(node: string, instanceId: string, ordinal: number): string {
    return `${this.nodeAssignments(node)}${check(instanceId, 'instance id')}/${ordinal}`;
  }

  statuses(): string {
    return `${this.root}/status/`;
  }
  instanceStatuses(instanceId: string): string {
    return `${this.statuses()}${check(instanceId, 'instance id')}/`;
  }
  status(instanceId: string, ordinal: number): string {
    return `${this.instanceStatuses(instanceId)}${ordinal}`;
  }

  primaries(): string {
    return `${this.root}/primary/`;
  }
  primary(instanceId: string): string {
    return `${this.primaries()}${check(instanceId, 'instance id')}`;
  }

  routes(): string {
    return `${this.root}/routes/`;
  }
  route(instanceId: string): string {
    return `${this.routes()}${check(instanceId, 'instance id')}`;
  }

  bindings(): string {
    return `${this.root}/bindings/`;
  }
  instanceBindings(instanceId: string): string {
    return `${this.bindings()}${check(instanceId, 'instance id')}/`;
  }
  binding(instanceId: string, bindingId: string): string {
    return `${this.instanceBindings(instanceId)}${check(bindingId, 'binding id')}`;
  }

  /** Seeding progress of a replica's volume on a node (`TransferStatusRecord`), under that agent's lease. */
  transfers(): string {
    return `${this.root}/transfers/`;
  }
  transfer(instanceId: string, ordinal: number, node: string): string {
    return `${this.transfers()}${check(instanceId, 'instance id')}/${ordinal}/${check(node, 'node')}`;
  }

  /** Planned relocations (`RelocationRecord`), one per replica; the last one stays for `sf service`. */
  relocations(): string {
    return `${this.root}/relocations/`;
  }
  instanceRelocations(instanceId: string): string {
    return `${this.relocations()}${check(instanceId, 'instance id')}/`;
  }
  relocation(instanceId: string, ordinal: number): string {
    return `${this.instanceRelocations(instanceId)}${ordinal}`;
  }

  /** Planned primary changes (`SwitchoverRecord`), one per instance; the last one stays. */
  switchovers(): string {
    return `${this.root}/switchovers/`;
  }
  switchover(instanceId: string): string {
    return `${this.switchovers()}${check(instanceId, 'instance id')}`;
  }

  /** Backups (`BackupRecord`); they outlive their instance. */
  backups(): string {
    return `${this.root}/backups/`;
  }
  instanceBackups(instanceId: string): string {
    return `${this.backups()}${check(instanceId, 'instance id')}/`;
  }
  backup(instanceId: string, backupId: string): string {
    return `${this.instanceBackups(instanceId)}${check(backupId, 'backup id')}`;
  }

  events(): string {
    return `${this.root}/events/`;
  }
  /** Event keys sort by time: a zero-padded millisecond timestamp plus a tie-breaker. */
  event(atMs: number, tieBreaker: string): string {
    return `${this.events()}${String(atMs).padStart(15, '0')}-${check(tieBreaker, 'event id')}`;
  }

  /** The last path segment(s) of `key` below `prefix`, split on `/`. */
  static tail(prefix: string, key: string): string[] {
    if (!key.startsWith(prefix)) throw new TypeError(`${key} is not under ${prefix}`);
    return key.slice(prefix.length).split('/');
  }
}
