import type {
  BackupRecord,
  FailoverPolicy,
  InstanceRecord,
  InstanceRestore,
  InstanceScope,
  IoPolicy,
  OperationRecord,
  RelocationRecord,
  SchedulingStatusRecord,
} from '@service-foundry/core';

/** One instance in `GET /sf/v1/instances`. */
export interface InstanceSummary {
  id: string;
  name: string;
  service: string;
  plan: string;
  phase: InstanceRecord['phase'];
  message: string;
  operation: OperationRecord;
  replicas: { desired: number; placed: number; running: number };
  /**
   * Where clients connect (the routers), once the controller published a route: `host` is
   * the first router, `hosts` every router (all on the same port).
   */
  route: { host: string; hosts: string[]; port: number } | null;
  createdAt: string;
  /** Where the name is unique: the platform's organization and space; null: the operators' scope. */
  scope: InstanceScope | null;
}

export interface ReplicaView {
  ordinal: number;
  node: string | null;
  /** The agent's state, or `standby`/`placed`/`pending` before an agent reported. */
  state: string;
  host: string | null;
  port: number | null;
  message: string;
  /** Replication role and position as the agent applied and read them. */
  role: string | null;
  position: string | null;
  /** IO settings in force on this replica. */
  io: IoPolicy | null;
}

/** A key of the instance, never its password. */
export interface BindingView {
  id: string;
  name: string;
  username: string;
  createdAt: string;
}

/** A volume-shipping standby and its last complete copy of the primary. */
export interface StandbyView {
  ordinal: number;
  node: string;
  /** The node the copies come from. */
  from: string;
  copiedAt: string | null;
  snapshots: number;
  state: string;
}

/**
 * `GET /sf/v1/instances/:id` (also the answer of `POST …/restore`): the summary plus
 * replicas, primary and keys.
 */
export interface InstanceDetail extends InstanceSummary {
  replicaDetails: ReplicaView[];
  /** epoch = mod revision of the primary key, the instance's fencing token. */
  primary: { node: string; ordinal: number; epoch: number } | null;
  bindings: BindingView[];
  /** Why replicas are not all placed (written by the scheduler); null when nothing waits. */
  scheduling: Omit<SchedulingStatusRecord, 'instanceId'> | null;
  /** Durability and local IO asked for; null on instances from before replication. */
  io: IoPolicy | null;
  failover: FailoverPolicy | null;
  /** The replica relocation updated last (running or finished); null when none was ever asked for. */
  relocation: RelocationRecord | null;
  /** The newest backup of the instance; null when it has none. */
  backup: BackupRecord | null;
  /** Set on an instance restored from a backup: which one, and whether its data is copied yet. */
  restore: InstanceRestore | null;
  /** Volume-shipping plans: the copy interval (the RPO) and each standby's last complete copy. */
  shipping: { intervalSeconds: number; standbys: StandbyView[] } | null;
  /**
   * The plan's `maintenance_info` version the instance runs (null: recorded before versions
   * were) and the one the catalog offers now; the same for the container image (null:
   * recorded before upgrades were); whether an upgrade would change anything
   * (`sf upgrade-service`), and why.
   */
  maintenance: {
    running: string | null;
    offered: string | null;
    runningImage: string | null;
    offeredImage: string | null;
    upgradeAvailable: boolean;
    reason: string | null;
  };
}
