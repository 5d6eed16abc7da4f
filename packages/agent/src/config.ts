import {
  catalogDirSchema,
  configCompiler,
  type EtcdTlsFiles,
  etcdEndpointsSchema,
  etcdKeepaliveMsSchema,
  etcdTlsSchema,
  InvalidConfigError,
  keyspaceRootSchema,
  type MetricsListen,
  metricsListenSchema,
  type Resources,
  secretsKeyFileSchema,
} from '@service-foundry/core';

/** Options of one node agent, as written in its JSON config file. */
export interface AgentOptions {
  /** etcd client URLs, e.g. `["https://10.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
  /**
   * This node's etcd identity (certificate CN `sf-agent.<node>`) and etcd's CA; required
   * for `https://` endpoints.
   * @default undefined
   */
  etcdTls?: EtcdTlsFiles;
  /**
   * gRPC keepalive on the etcd connections, in ms: a member that vanished (host off, link
   * cut) is left after about twice this. 0 sends no pings; etcd closes connections that
   * ping more often than its `--grpc-keepalive-min-time` (default 5 s).
   * @default 0
   */
  etcdKeepaliveMs?: number;
  /** Root of every key this cluster uses. @default '/sf' */
  keyspaceRoot?: string;
  /** Key file that opens the instances' credentials sealed in etcd (core SecretBox). Required. */
  secretsKeyFile: string;
  /** Name of the node this agent represents; a key segment (letters, digits, `.`, `_`, `-`). Required. */
  node: string;
  /**
   * IPv4 address containers publish their ports on; the router connects here. Any
   * 127.x.y.z lets several agents share one machine.
   * @default '127.0.0.1'
   */
  address?: string;
  /** What the node offers to the scheduler. @default { cpuMillis: 4000, memoryMb: 8192, diskMb: 51200 } */
  capacity?: Partial<Resources>;
  /** Free-form labels the scheduler may filter on (zone, disk type, …). @default {} */
  labels?: Record<string, string>;
  /** TTL of the node lease: the node vanishes this long after the agent stops renewing. @default 10 */
  leaseTtlSeconds?: number;
  /** Interval of the full reconcile pass (container health, orphans, retries). @default 5000 */
  reconcileIntervalMs?: number;
  /** Unix socket of the node's Docker Engine. @default '/var/run/docker.sock' */
  dockerSocket?: string;
  /** Folder with `<service>/service.json` entries. @default core's defaultCatalogDir() */
  catalogDir?: string;
  /** Marks every container and volume this cluster owns (Docker label `sf.cluster`). @default 'sf' */
  clusterId?: string;
  /**
   * Which address a replicated service's status `peer` names, i.e. where replicas on other
   * nodes stream from. `container`: the container's IP on its Docker network (agents sharing
   * one Docker Engine); `node`: `address` plus the published host port of the replication
   * port (nodes that run their own dockerd, e.g. in network namespaces).
   * @default 'container'
   */
  peerAddress?: 'container' | 'node';
  /** How often the replication position of each running replica is read (its role: every `positionRefreshMs`). @default 1000 */
  positionIntervalMs?: number;
  /** An unchanged position is written again, and the role asked, this often (switchovers want a position from the last 10 s). @default 5000 */
  positionRefreshMs?: number;
  /**
   * While an instance's primary is on a node that lost its lease (a failover may come), this
   * node's replicas of it are read this often and every reading is written: failover counts
   * only positions read after the loss and the fence, and waits at most 3 s for them.
   * @default 250
   */
  promptPositionIntervalMs?: number;
  /**
   * While a switchover waits for positions read after its old primary stopped, this
   * node's other replicas of that instance are read this often and every reading is
   * written: the controller promotes on the first one. @default 50
   */
  urgentPositionIntervalMs?: number;
  /**
   * Self-fencing (I3): when no keepalive was confirmed for `leaseTtlSeconds` minus this,
   * every local primary is killed, before the lease can expire and a replica elsewhere be
   * promoted. Must be below the TTL.
   * @default max(500, leaseTtlSeconds * 1000 / 4)
   */
  selfFenceMarginMs?: number;
  /** How often the lease age is checked for self-fencing; independent of etcd events. @default 200 */
  selfFenceCheckIntervalMs?: number;
  /**
   * The failsafe (docs/failover.md): through an etcd outage a primary lives on while every
   * other replica of its instance promises, over the volume servers' mutual TLS, not to take
   * over. Needs `volumes` (the channel); without it every primary is fenced as before.
   */
  failsafe?: FailsafeOptions;
  /** Deadline of each replication command (promote, follow, configure) run in a container. @default 30000 */
  replicationCommandTimeoutMs?: number;
  /**
   * Deadline of a service's backup `prepare` hook (Postgres: a `pg_basebackup` of the whole
   * data folder inside the container), which grows with the database and the disk's load.
   * @default 1800000 (30 min)
   */
  backupHookTimeoutMs?: number;
  /**
   * The node's volume server and backup store. Without it the node neither serves nor
   * receives volumes: relocations to or from it, restores onto it and backups on it fail
   * with a message that says so.
   * @default undefined
   */
  volumes?: AgentVolumeOptions;
  /**
   * This node's service certificate (issued by the cluster CA, naming the node's address
   * and the router's hosts), its key and the CA. The agent puts the three into every
   * container of a service whose catalog entry has `runtime.tls` (as files, like the
   * passwords): replication between nodes and client connections are TLS with it. Without
   * it, such services are not run here (the replica's status says why).
   * @default undefined
   */
  serviceTls?: TlsFilesOptions;
  /** Where `/metrics` is served (docs/metrics.md); absent: not served. @default undefined */
  metrics?: MetricsListen;
}

/** PEM files: the cluster CA, a certificate it issued and that certificate's key. */
export interface TlsFilesOptions {
  /** The cluster CA certificate. Required. */
  caFile: string;
  /** This node's certificate. Required. */
  certFile: string;
  /** Its private key (mode 0600). Required. */
  keyFile: string;
}

export interface AgentVolumeOptions {
  /** The cluster's shared secret for volume transfers (≥ 16 characters); never logged. */
  secret: string;
  /** Port of the volume server on `address`; 0 takes a free one (the node record announces it). @default 0 */
  port?: number;
  /** Folder of this node's backup store. @default '/var/lib/service-foundry/backups' */
  backupDir?: string;
  /** fsync received volumes before they are swapped in. @default true */
  fsync?: boolean;
  /**
   * The node's volume certificate (CN `sf-volumes.<node>`, naming the node's address) and
   * the cluster CA: the volume server speaks HTTPS with it and accepts only peers that
   * present such a certificate; pulls present it and accept only servers whose certificate
   * names the address they dial. Required: volumes never cross nodes in clear.
   */
  tls: TlsFilesOptions;
}

export interface AgentVolumeConfig {
  secret: string;
  port: number;
  backupDir: string;
  fsync: boolean;
  tls: TlsFilesOptions;
}

/** The validated, defaulted, frozen form of {@link AgentOptions}. */
export interface AgentConfig {
  etcdEndpoints: string[];
  etcdTls?: EtcdTlsFiles;
  etcdKeepaliveMs: number;
  keyspaceRoot: string;
  secretsKeyFile: string;
  node: string;
  address: string;
  capacity: Resources;
  labels: Record<string, string>;
  leaseTtlSeconds: number;
  reconcileIntervalMs: number;
  dockerSocket: string;
  catalogDir: string;
  clusterId: string;
  peerAddress: 'container' | 'node';
  positionIntervalMs: number;
  positionRefreshMs: number;
  promptPositionIntervalMs: number;
  urgentPositionIntervalMs: number;
  selfFenceMarginMs: number;
  selfFenceCheckIntervalMs: number;
  failsafe: Required<FailsafeOptions>;
  replicationCommandTimeoutMs: number;
  backupHookTimeoutMs: number;
  volumes?: AgentVolumeConfig;
  serviceTls?: TlsFilesOptions;
  metrics?: MetricsListen;
}

/** What the schema checks: the margin's default depends on the TTL, so it is filled in afterwards. */
export interface FailsafeOptions {
  /** @default true */
  enabled?: boolean;
  /**
   * How long one promise binds the replica that gave it.
   * @default max(2000, selfFenceMarginMs + askIntervalMs + callTimeoutMs + 750)
   */
  promiseMs?: number;
  /**
   * Lease age from which a primary asks its replicas for promises: past two renewal
   * intervals (a sixth of the TTL each, lease-renewer.ts), so a healthy node does not ask.
   * @default min(leaseTtlSeconds × 1000 / 3 + 250, fence point − 500), fence point = TTL − selfFenceMarginMs
   */
  askAfterMs?: number;
  /** Pause between two rounds of asking. @default 250 */
  askIntervalMs?: number;
  /** Deadline of one call to a replica's node. @default 500 */
  callTimeoutMs?: number;
}

type FailsafeInput = Omit<Required<FailsafeOptions>, 'promiseMs' | 'askAfterMs'> & {
  promiseMs?: number;
  askAfterMs?: number;
};
type AgentConfigInput = Omit<AgentConfig, 'selfFenceMarginMs' | 'failsafe'> & {
  selfFenceMarginMs?: number;
  failsafe: FailsafeInput;
};

const keySegment = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

const absolutePath = { type: 'string', pattern: '^/', maxLength: 4096 } as const;
const tlsFilesSchema = {
  type: 'object',
  required: ['caFile', 'certFile', 'keyFile'],
  additionalProperties: false,
  properties: { caFile: absolutePath, certFile: absolutePath, keyFile: absolutePath },
} as const;
const ipv4 = '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$';

/** ajv's JSONSchemaType, taken from core so the agent does not depend on ajv itself. */
type AgentConfigSchema = Parameters<typeof configCompiler<AgentConfigInput>>[1];

const schema: AgentConfigSchema = {
  type: 'object',
  required: [
    'etcdEndpoints',
    'keyspaceRoot',
    'secretsKeyFile',
    'node',
    'address',
    'capacity',
    'labels',
    'leaseTtlSeconds',
    'reconcileIntervalMs',
    'dockerSocket',
    'catalogDir',
    'clusterId',
    'peerAddress',
    'positionIntervalMs',
    'positionRefreshMs',
    'promptPositionIntervalMs',
    'urgentPositionIntervalMs',
    'selfFenceCheckIntervalMs',
    'failsafe',
    'replicationCommandTimeoutMs',
    'backupHookTimeoutMs',
  ],
  additionalProperties: false,
  properties: {
    etcdEndpoints: etcdEndpointsSchema,
    etcdTls: etcdTlsSchema,
    etcdKeepaliveMs: etcdKeepaliveMsSchema,
    keyspaceRoot: keyspaceRootSchema,
    secretsKeyFile: secretsKeyFileSchema,
    node: { type: 'string', pattern: keySegment },
    address: { type: 'string', pattern: ipv4, default: '127.0.0.1' },
    capacity: {
      type: 'object',
      required: ['cpuMillis', 'memoryMb', 'diskMb'],
      additionalProperties: false,
      default: { cpuMillis: 4000, memoryMb: 8192, diskMb: 51200 },
      properties: {
        cpuMillis: { type: 'integer', minimum: 1, default: 4000 },
        memoryMb: { type: 'integer', minimum: 1, default: 8192 },
        diskMb: { type: 'integer', minimum: 1, default: 51200 },
      },
    },
    labels: {
      type: 'object',
      required: [],
      additionalProperties: { type: 'string' },
      propertyNames: { pattern: keySegment },
      default: {},
    },
    leaseTtlSeconds: { type: 'integer', minimum: 1, maximum: 3600, default: 10 },
    reconcileIntervalMs: { type: 'integer', minimum: 50, maximum: 3_600_000, default: 5000 },
    dockerSocket: { type: 'string', minLength: 1, default: '/var/run/docker.sock' },
    catalogDir: catalogDirSchema,
    clusterId: { type: 'string', pattern: keySegment, default: 'sf' },
    peerAddress: { type: 'string', enum: ['container', 'node'], default: 'container' },
    positionIntervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 1000 },
    positionRefreshMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 5000 },
    promptPositionIntervalMs: { type: 'integer', minimum: 10, maximum: 10_000, default: 250 },
    urgentPositionIntervalMs: { type: 'integer', minimum: 10, maximum: 10_000, default: 50 },
    selfFenceMarginMs: { type: 'integer', minimum: 0, nullable: true },
    selfFenceCheckIntervalMs: { type: 'integer', minimum: 10, maximum: 10_000, default: 200 },
    failsafe: {
      type: 'object',
      required: ['enabled', 'askIntervalMs', 'callTimeoutMs'],
      additionalProperties: false,
      default: { enabled: true, askIntervalMs: 250, callTimeoutMs: 500 },
      properties: {
        enabled: { type: 'boolean', default: true },
        promiseMs: { type: 'integer', minimum: 100, maximum: 60_000, nullable: true },
        askAfterMs: { type: 'integer', minimum: 0, maximum: 60_000, nullable: true },
        askIntervalMs: { type: 'integer', minimum: 10, maximum: 10_000, default: 250 },
        callTimeoutMs: { type: 'integer', minimum: 50, maximum: 10_000, default: 500 },
      },
    },
    replicationCommandTimeoutMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 30_000 },
    backupHookTimeoutMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 1_800_000 },
    volumes: {
      type: 'object',
      nullable: true,
      required: ['secret', 'port', 'backupDir', 'fsync', 'tls'],
      additionalProperties: false,
      properties: {
        secret: { type: 'string', minLength: 16 },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 0 },
        backupDir: { type: 'string', pattern: '^/', default: '/var/lib/service-foundry/backups' },
        fsync: { type: 'boolean', default: true },
        tls: tlsFilesSchema,
      },
    },
    serviceTls: { ...tlsFilesSchema, nullable: true },
    metrics: metricsListenSchema,
  },
};

const compileInput = configCompiler<AgentConfigInput>('agent config', schema);

/** The documented default margin: a quarter of the TTL, at least half a second. */
export function defaultSelfFenceMarginMs(leaseTtlSeconds: number): number {
  return Math.max(500, Math.floor((leaseTtlSeconds * 1000) / 4));
}

/** Validates agent options (unknown fields are errors) and fills in the defaults. */
export function compileAgentConfig(input: unknown): Readonly<AgentConfig> {
  const config = compileInput(input);
  const ttlMs = config.leaseTtlSeconds * 1000;
  const selfFenceMarginMs = config.selfFenceMarginMs ?? defaultSelfFenceMarginMs(config.leaseTtlSeconds);
  // A margin as long as the TTL would fence the node all the time; two renewal intervals
  // (a third of the TTL) must fit before the fence point.
  if (selfFenceMarginMs >= ttlMs - ttlMs / 3) {
    throw new InvalidConfigError('agent config', [
      `/selfFenceMarginMs must be below two thirds of leaseTtlSeconds (${Math.floor((2 * ttlMs) / 3)} ms); got ${selfFenceMarginMs}`,
    ]);
  }
  const { askIntervalMs, callTimeoutMs } = config.failsafe;
  const fencePointMs = ttlMs - selfFenceMarginMs;
  const promiseMs =
    config.failsafe.promiseMs ?? Math.max(2000, selfFenceMarginMs + askIntervalMs + callTimeoutMs + 750);
  const askAfterMs =
    config.failsafe.askAfterMs ?? Math.max(0, Math.min(Math.floor(ttlMs / 3) + 250, fencePointMs - 500));
  // A primary's cover must be renewed before it runs out: one pause and one call must fit
  // in a promise beyond the margin, or the failsafe would flicker between kept and killed.
  if (config.failsafe.enabled && promiseMs <= selfFenceMarginMs + askIntervalMs + callTimeoutMs) {
    throw new InvalidConfigError('agent config', [
      `/failsafe/promiseMs must be above selfFenceMarginMs + askIntervalMs + callTimeoutMs (${selfFenceMarginMs + askIntervalMs + callTimeoutMs} ms); got ${promiseMs}`,
    ]);
  }
  if (config.failsafe.enabled && askAfterMs >= fencePointMs) {
    throw new InvalidConfigError('agent config', [
      `/failsafe/askAfterMs must be below the fence point (${fencePointMs} ms); got ${askAfterMs}`,
    ]);
  }
  const failsafe = Object.freeze({ ...config.failsafe, promiseMs, askAfterMs });
  return Object.freeze({ ...config, selfFenceMarginMs, failsafe });
}
