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
  /** Human name from the platform context (CF `instance_name`), unique among live instances. */
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

export type DesiredReplicaState = 'running' | 'removed';

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
}

export type ReplicaState = 'creating' | 'starting' | 'running' | 'failed' | 'removing';

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
  /** One entry per pending replica. */
  pending: Array<{ ordinal: number; reason: string }>;
  updatedAt: string;
}
