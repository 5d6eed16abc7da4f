/** `GET /sf/v1/instances/:id/explain` (and `sf explain NAME --json`): docs/explain.md. */

/** A scheduler filter checked against the replica's node as it is now. */
export interface FilterCheck {
  /** The filter's name in packages/scheduler (nodeAlive, fitsCapacity, …). */
  filter: string;
  passed: boolean;
  /** Why it fails; empty when it passes. */
  reason: string;
}

/** A scheduler score of the replica's node (0–100) and its weight (the scheduler's defaults). */
export interface ScoreCheck {
  score: string;
  weight: number;
  value: number;
}

export interface ReplicaExplanation {
  ordinal: number;
  node: string | null;
  role: string | null;
  state: string;
  /** Replication position (Postgres: WAL bytes; Redis: offset); null before one was read. */
  position: string | null;
  /** Bytes behind the primary; 0 for the primary, null when unknown. */
  lagBytes: number | null;
  placedAt: string | null;
  placedBy: string | null;
  /** Nodes this replica ran on before (newest first). */
  previousNodes: string[];
  /** The scheduler's filters on this node, re-checked now without this replica counted. */
  filters: FilterCheck[];
  scores: ScoreCheck[];
  /** Feasible nodes for this replica now, best score first (its own node included). */
  alternatives: Array<{ node: string; total: number }>;
  /** Plain sentences with the numbers. */
  sentences: string[];
}

/** What the fencing of a node would do, from its devices and their last health check. */
export interface FencingOutlook {
  /** The instance's fencing policy. */
  policy: 'required' | 'best-effort' | 'off';
  devicesConfigured: number;
  levels: number;
  lastCheck: {
    at: string;
    ageSeconds: number;
    /** Devices that failed their last `status`: `level N device (reason)`. */
    failing: string[];
  } | null;
  /** `yes`: every device of some level answered its last check; `unknown`: never checked. */
  wouldSucceed: 'yes' | 'no' | 'unknown' | 'not-needed';
}

export interface NodeLossExplanation {
  node: string;
  /** Replicas of this instance on the node. */
  ordinals: number[];
  /** `none`: no replica there; `standby-lost`: a standby goes; `failover`: the primary goes and another takes over; `blocked`: it goes and nothing can take over; `outage`: the only copy goes. */
  outcome: 'none' | 'standby-lost' | 'failover' | 'blocked' | 'outage';
  promoted: { ordinal: number; node: string } | null;
  /** Seconds without accepted writes, from the measured failover figures (docs/explain.md). */
  expectedWriteGapSeconds: { typical: number; worst: number } | null;
  /** Acknowledged bytes that could be lost: 0 under received/remote-fsync; the lag under async; null unknown. */
  dataAtRiskBytes: number | null;
  fencing: FencingOutlook;
  /** What would stop (or delay) the failover. */
  blockers: string[];
  sentences: string[];
}

export interface InstanceExplanation {
  id: string;
  name: string;
  service: string;
  plan: string;
  phase: string;
  generatedAt: string;
  durability: string | null;
  localIo: string | null;
  primary: { ordinal: number; node: string; epoch: number } | null;
  replicas: ReplicaExplanation[];
  ifNodeDies: NodeLossExplanation[];
  backup: { id: string; completedAt: string; ageSeconds: number; node: string | null } | null;
  risks: string[];
  /** Every sentence above, in reading order: what `sf explain` prints. */
  sentences: string[];
}
