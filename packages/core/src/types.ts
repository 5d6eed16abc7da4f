/**
 * The records stored in etcd. Every value is JSON; the key layout lives in keyspace.ts.
 * docs/keyspace.md describes who writes and who reads each record.
 */

/** Resources a replica asks for and a node offers. cpu in millicores. */
export interface Resources {
  cpuMillis: number;
  memoryMb: number;
  diskMb: number;
}

/** Written by an agent under its lease: the node is alive while this key exists. */
export interface NodeRecord {
  name: string;
  /** Address containers publish their ports on; the router connects here. */
  address: string;
  capacity: Resources;
  labels: Record<string, string>;
  startedAt: string;
  /**
   * The agent's volume server (`http://address:port`): other agents pull volume snapshots
   * from it (relocation, restores), authenticated with the cluster secret. Absent when the
   * agent serves no volumes.
   */
  volumeUrl?: string;
}

/** One reserved replica on a node, as recorded in the node's allocation. */
export interface AllocatedReplica {
  instanceId: string;
  ordinal: number;
  resources: Resources;
}

/**
 * The node's allocation ledger: which replicas hold how much of its capacity. Written only
 * by transactions that compare its mod revision, so concurrent schedulers cannot
 * over-commit a node (I5).
 */
export interface NodeAllocation {
  node: string;
  /** Keyed by `<instanceId>/<ordinal>`. */
  replicas: Record<string, AllocatedReplica>;
}

export type InstancePhase = 'provisioning' | 'ready' | 'deprovisioning' | 'failed';
export type OperationType = 'provision' | 'deprovision' | 'update';
export type OperationState = 'in progress' | 'succeeded' | 'failed';

export interface OperationRecord {
  id: string;
  type: OperationType;
  state: OperationState;
  description: string;
  startedAt: string;
}

/** Desired state of a service instance, written by the broker. */
export interface InstanceRecord {
  id: string;
  /** Human name from the platform context (CF `instance_name`), unique among live instances of its scope. */
  name: string;
  serviceId: string;
  planId: string;
  serviceName: string;
  planName: string;
  parameters: Record<string, unknown>;
  replicas: number;
  resources: Resources;
  /** Port the router listens on for this instance. */
  routerPort: number;
  context: Record<string, unknown>;
  createdAt: string;
  phase: InstancePhase;
  message: string;
  operation: OperationRecord;
  /** IO settings; absent on instances from before replication (treated as async/fsync). */
  io?: IoPolicy;
  failover?: FailoverPolicy;
  /** Set when the instance was created from a backup (`sf restore … --as NEW`). */
  restore?: InstanceRestore;
  /**
   * Where the name is unique: the platform's organization and space. Absent: the operators'
   * own scope (instances `sf` created without a platform, and records from before scopes).
   */
  scope?: InstanceScope;
}

/** A platform's tenant boundary (Cloud Foundry organization and space; Kubernetes cluster and namespace). */
export interface InstanceScope {
  organization: string;
  space: string;
}

/** Where a restored instance's data comes from, and how far the copy has come. */
export interface InstanceRestore {
  /** The instance the backup was taken of. */
  instanceId: string;
  backupId: string;
  /** Node whose agent holds the backup. */
  node: string;
  /**
   * In place: `stopping` (every replica stops) → `copying` → `copied`. Into a new
   * instance: `copying` until the first replica's volume holds the backup; then roles are
   * given out.
   */
  state: 'stopping' | 'copying' | 'copied';
  /** The instance's own backup restored over its data (`sf restore NAME BACKUP`). */
  inPlace?: boolean;
  /** The replica that receives the backup (and becomes the first primary); set when the copy starts. */
  ordinal?: number;
}

/** The instance's admin credentials, read by agents (container env) and the broker (bindings). */
export interface InstanceSecret {
  adminUser: string;
  adminPassword: string;
  /** Replication login used by replicas to stream from the primary. */
  replicationUser?: string;
  replicationPassword?: string;
}

/** Which node holds a replica; written in the same transaction as the assignment. */
export interface PlacementRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  placedAt: string;
  scheduler: string;
  /**
   * Nodes that held this replica before it was re-placed, newest first (at most a few).
   * Their volumes may still hold a copy of the data; the scheduler's volume-locality score
   * prefers them.
   */
  previousNodes?: string[];
}

/** A running scheduler, under its session lease; the members share (or elect) the work. */
export interface SchedulerMemberRecord {
  name: string;
  mode: 'active-active' | 'leader';
  startedAt: string;
}

/**
 * `stopped`: the container is stopped gracefully and the volume kept (a relocation's
 * source while its final delta is copied).
 */
export type DesiredReplicaState = 'running' | 'removed' | 'stopped';

export type ReplicaRole = 'primary' | 'replica';

/** When a write is acknowledged: DRBD's protocols A, B and C. */
export type Durability = 'async' | 'received' | 'remote-fsync';

/** How the service flushes its own writes. */
export type LocalIo = 'fsync' | 'batched' | 'unsafe';

export type FencingPolicy = 'required' | 'best-effort' | 'off';

/** The IO settings a replica's service applies (catalog `replication.configure`). */
export interface IoPolicy {
  durability: Durability;
  localIo: LocalIo;
}

/** Per-instance failover rules, from the plan and the user's parameters. */
export interface FailoverPolicy {
  fencing: FencingPolicy;
  /** How long fencing may take before it counts as failed. */
  fencingTimeoutSeconds: number;
  /** async: a replica further behind than this is not promoted. */
  maxLagBytes: number;
}

/** What a node's agent must run; the agent watches its own prefix. */
export interface AssignmentRecord {
  instanceId: string;
  ordinal: number;
  serviceName: string;
  planName: string;
  resources: Resources;
  desired: DesiredReplicaState;
  /**
   * Role the controller gives the replica. Absent: not decided yet, the agent creates
   * nothing. `primary` with epoch 0 is the bootstrap primary (no primary key yet).
   */
  role?: ReplicaRole;
  /**
   * Primary epoch this role belongs to. An agent starts or promotes a primary only while
   * `primary/<id>` still has this mod revision (I2).
   */
  epoch?: number;
  /** Replicas: where the primary's service answers for replication. */
  upstream?: { host: string; port: number };
  /** Service IO settings to apply. */
  io?: IoPolicy;
  /** Bumped when the replica must be rebuilt from the primary on a fresh volume. */
  generation?: number;
  /**
   * Fill the replica's volume from another agent's volume before any container is made.
   * The agent pulls once per `round` (a later round sends only what changed) and reports in
   * `transfers/<id>/<ordinal>/<node>`; while `seed` is set it starts nothing.
   */
  seed?: SeedRecord;
  /** With `desired: removed`: remove the container but keep the volume (an old copy kept as a standby). */
  keepVolume?: boolean;
  /**
   * With `desired: removed`: the replica now lives on this node, which owns its status key;
   * the old node removes its copy without writing the replica's status.
   */
  movedTo?: string;
}

/** Where a seeded volume comes from: a volume served by a node's agent. */
export interface SeedSource {
  node: string;
  /**
   * Name on that agent's volume server: `replica.<instanceId>.<ordinal>` (the volume of a
   * replica on that node) or `backup.<instanceId>.<backupId>` (a backup in its store).
   */
  volume: string;
}

export interface SeedRecord {
  from: SeedSource;
  /** Incremented to ask for another pull; the agent reports the round it completed. */
  round: number;
  /**
   * Volume shipping: pull again this long after each complete copy, for as long as the
   * seed stays (a standby kept within this many seconds of its primary: the RPO).
   */
  everySeconds?: number;
}

export type ReplicaState = 'creating' | 'starting' | 'running' | 'failed' | 'removing' | 'stopped';

/** Actual state of a replica, written by its agent under the node lease. */
export interface ReplicaStatus {
  instanceId: string;
  ordinal: number;
  node: string;
  state: ReplicaState;
  /** Where the service answers (node address and published port), once running. */
  host?: string;
  port?: number;
  containerId?: string;
  message: string;
  updatedAt: string;
  /** Role and epoch as applied inside the running service. */
  role?: ReplicaRole;
  epoch?: number;
  /** Where other replicas reach this one for replication (container address on one machine). */
  peer?: { host: string; port: number };
  /** Replication position (Postgres: LSN as a decimal integer); higher is more advanced. */
  position?: string;
  positionAt?: string;
  /** The IO settings in force, once applied. */
  io?: IoPolicy;
  generation?: number;
}

/** The current primary of an instance. The key's mod revision is the epoch (fencing token). */
export interface PrimaryRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  host: string;
  port: number;
  electedAt: string;
}

export type RouteProtocol = 'tcp' | 'http';

/** What the router serves for an instance. */
export interface RouteRecord {
  instanceId: string;
  protocol: RouteProtocol;
  /** TCP: the router's listen port. */
  port: number;
  /** HTTP: the Host header routed to this instance. */
  hostname?: string;
  target: { host: string; port: number };
  /** Mod revision of the primary key when this route was written. */
  epoch: number;
  /**
   * Admission limits the router enforces for this route. `maxSessions`: client sessions let
   * through to the instance at a time (the plan's `connections.router`). Absent in records
   * written before limits existed: the router then applies its own `defaultMaxSessions`.
   */
  limits?: { maxSessions: number };
}

export interface BindingRecord {
  id: string;
  instanceId: string;
  name: string;
  username: string;
  password: string;
  createdAt: string;
  context: Record<string, unknown>;
  parameters: Record<string, unknown>;
}

export interface EventRecord {
  at: string;
  kind: string;
  message: string;
  instanceId?: string;
  node?: string;
  source: string;
}

/** Operator controls on a node. A cordoned node takes no new replicas; a draining one also sheds its replicas. */
export interface NodeControlRecord {
  node: string;
  cordoned: boolean;
  draining: boolean;
  reason: string;
  updatedAt: string;
  by: string;
}

export type FenceState = 'fencing' | 'fenced' | 'failed' | 'unfenced';

/**
 * A node's STONITH state. `fenced` is the confirmation the controller and the scheduler
 * wait for before they move a stateful replica off a node that stopped answering.
 */
export interface NodeFenceRecord {
  node: string;
  state: FenceState;
  reason: string;
  /** Who asked: `controller`, or an operator's name for manual fencing. */
  by: string;
  at: string;
  /** The level that succeeded, when fenced. */
  level?: number;
}

/** Why replicas of an instance are not (all) placed, for `sf service`. */
export interface SchedulingStatusRecord {
  instanceId: string;
  desired: number;
  placed: number;
  /**
   * One entry per pending replica. `noRoom`: no live node has the free cpu, memory and disk
   * the replica needs, whatever else rules it out (the controller fails a provision on it).
   */
  pending: Array<{ ordinal: number; reason: string; noRoom?: boolean }>;
  updatedAt: string;
}

/** What one volume transfer moved (transfer events, relocation and backup records). */
export interface TransferFigures {
  mode: 'full' | 'delta';
  /** File content bytes, and the HTTP body bytes including tar framing. */
  bytes: number;
  wireBytes: number;
  files: number;
  deleted: number;
  durationMs: number;
  /** Content throughput, MB/s (10^6 bytes). */
  mbPerSecond: number;
}

/** A transfer under way: what the CLI draws its progress bar from. */
export interface TransferProgressRecord {
  bytes: number;
  files: number;
  plannedBytes?: number;
  plannedFiles?: number;
  elapsedMs: number;
  mbPerSecond: number;
}

/**
 * A seeding agent's progress (`transfers/<id>/<ordinal>/<node>`), under its lease. It is
 * not the replica's status: the replica may be running elsewhere while this node copies it.
 */
export interface TransferStatusRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  from: SeedSource;
  round: number;
  /** `copied`: round `round` is complete and its copy swapped in. */
  state: 'copying' | 'copied' | 'failed';
  message: string;
  /** With `failed`: the agent tries this round again by itself. */
  willRetry?: boolean;
  /**
   * When the volume last became a complete copy of `from` (kept while the next periodic
   * copy runs: the volume holds that snapshot until the next one is swapped in).
   */
  copiedAt?: string;
  /** Complete copies made from this source so far. */
  snapshots?: number;
  progress?: TransferProgressRecord;
  result?: TransferFigures;
  updatedAt: string;
}

/**
 * A planned relocation of one replica (`relocations/<id>/<ordinal>`), written by the broker
 * (`requested`) and driven by the controller (docs/volumes.md has the state machine):
 *
 * requested → copying (pre-copy while it runs) → stopping (source stopped) → final (last
 * delta) → switching (placement, epoch, assignments moved) → done; any step → failed,
 * which before `switching` restarts the source and leaves the data where it was.
 */
export type RelocationPhase = 'requested' | 'copying' | 'stopping' | 'final' | 'switching' | 'done' | 'failed';

export interface RelocationRecord {
  instanceId: string;
  ordinal: number;
  /** Node the replica is on when the relocation was asked for. */
  from: string;
  /** Target node: given by the operator, or chosen by the controller in `requested`. */
  to?: string;
  /** Keep the old copy's volume on `from` (a standby copy) instead of deleting it. */
  keepSource: boolean;
  phase: RelocationPhase;
  message: string;
  /** `operator` (sf relocate) or `drain` (sf node drain). */
  reason: 'operator' | 'drain';
  requestedBy: string;
  requestedAt: string;
  updatedAt: string;
  /** Round 1: the full copy while the service runs. */
  precopy?: TransferFigures;
  /** Round 2: what changed during round 1, still while it runs (keeps the final delta small). */
  catchUp?: TransferFigures;
  /** The last round, with the service stopped. */
  final?: TransferFigures;
  /** When the source container was stopped, and when clients were routed to the target. */
  stoppedAt?: string;
  switchedAt?: string;
  /** stoppedAt → the route names the target. */
  downtimeMs?: number;
}

export type BackupState = 'requested' | 'running' | 'completed' | 'failed';

/**
 * One backup of an instance (`backups/<id>/<backupId>`): requested by the broker, taken by
 * the agent of the primary's node into its backup store, listed by `sf backups`.
 */
export interface BackupRecord {
  id: string;
  instanceId: string;
  instanceName: string;
  serviceName: string;
  planName: string;
  state: BackupState;
  message: string;
  requestedBy: string;
  requestedAt: string;
  /** The node (and replica) that took it; the backup lives in that agent's store. */
  node?: string;
  ordinal?: number;
  /** `hook`: the service's own consistent copy (catalog `backup.prepare`); `stopped`: copied while stopped. */
  method?: 'hook' | 'stopped';
  startedAt?: string;
  completedAt?: string;
  figures?: TransferFigures;
  progress?: TransferProgressRecord;
}
