import {
  type Catalog,
  catalogDirSchema,
  configCompiler,
  type EtcdTlsFiles,
  etcdEndpointsSchema,
  etcdKeepaliveMsSchema,
  etcdTlsSchema,
  type InstanceRecord,
  keyspaceRootSchema,
  type MetricsListen,
  metricsListenSchema,
  secretsKeyFileSchema,
} from '@service-foundry/core';
import type { SchedulerOptions } from './scheduler.js';

export interface SchedulerConfig {
  /** etcd client URLs. */
  etcdEndpoints: string[];
  /** The scheduler's etcd identity (CN `sf-scheduler`) and etcd's CA; required for `https://`. @default undefined */
  etcdTls?: EtcdTlsFiles;
  /**
   * gRPC keepalive on the etcd connections, in ms: a member that vanished (host off, link
   * cut) is left after about twice this. 0 sends no pings; etcd closes connections that
   * ping more often than its `--grpc-keepalive-min-time` (default 5 s).
   * @default 0
   */
  etcdKeepaliveMs: number;
  /** @default '/sf' */
  keyspaceRoot: string;
  /**
   * Key file that opens secrets sealed in etcd (fence devices' passwords, for the
   * controller's fencing). Required.
   */
  secretsKeyFile: string;
  /** Name recorded on placements, locks and the scheduler's membership key; unique per scheduler. @default 'scheduler-<pid>' */
  name: string;
  /** Full convergence pass interval, besides passes triggered by watches. @default 2000 */
  intervalMs: number;
  /**
   * TTL of the scheduler's session lease, which holds its membership and its node locks:
   * how long a dead or paused scheduler's share waits before others take it over.
   * @default 10
   */
  lockTtlSeconds: number;
  /** A provision that has not succeeded by then is marked failed. @default 300000 */
  provisionTimeoutMs: number;
  /** Services catalog folder. @default services-catalog/ of this checkout */
  catalogDir: string;
  /** Run the controller (primary election, routes, teardown) in this process. @default true */
  controller: boolean;
  /**
   * `leader`: the eldest scheduler places everything, the others stand by and take over
   * when its session lease expires. `active-active`: every scheduler places the replicas
   * of its share of instances (rendezvous hashing over live schedulers). All schedulers
   * of a cluster should use the same mode; docs/scheduler.md compares them.
   * @default 'leader'
   */
  mode: 'active-active' | 'leader';
  /** Feasible nodes to find before picking the best-scored one (a sample, not all nodes). @default 64 */
  nodesToScore: number;
  /** Nodes locked, and committed, per etcd request (each node a nested transaction). @default 32 */
  nodesPerTransaction: number;
  /** Lock/commit request pairs in flight at once. @default 8 */
  transactionsInFlight: number;
  /** Replicas decided per wave (at most one per instance). @default 2000 */
  replicasPerWave: number;
  /** etcd's `--max-txn-ops`; raise only if the etcd cluster's is raised. @default 128 */
  maxTxnOps: number;
  /** Score weights; 0 turns a score off. @default { leastAllocated: 1, binPack: 0, zoneSpread: 1, volumeLocality: 2 } */
  scoreWeights: { leastAllocated: number; binPack: number; zoneSpread: number; volumeLocality: number };
  /**
   * Test-only fault injection. `stopAfterLockAcquire`: the process sends itself SIGSTOP
   * once, right after taking node locks and before committing — the paused lock holder.
   * @default { stopAfterLockAcquire: false }
   */
  faultInjection: { stopAfterLockAcquire: boolean };
  /** Where `/metrics` is served (docs/metrics.md); absent: not served. @default undefined */
  metrics?: MetricsListen;
  /**
   * How often the controller runs `status` on every fence device (`fence-checks/<node>`,
   * read by `sf explain`); 0 turns the checks off.
   * @default 60000
   */
  fenceCheckIntervalMs: number;
  /**
   * The controller's liveness probes of every node's agent (node-prober.ts): a primary's
   * node that answered before and then failed `failuresToSilence` probes in a row is fenced
   * without waiting for its lease to expire. The probes present the scheduler's etcd
   * identity, so it must come from the CA that signed the agents' volume certificates (as
   * `sf up` issues them). `intervalMs` 0 turns the probes off: the lease alone decides.
   * @default { intervalMs: 250, timeoutMs: 500, failuresToSilence: 2 }
   */
  nodeProbe: { intervalMs: number; timeoutMs: number; failuresToSilence: number };
}

const weight = { type: 'number', minimum: 0, maximum: 100 } as const;

export const compileSchedulerConfig = configCompiler<SchedulerConfig>('scheduler config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints', 'secretsKeyFile'],
  properties: {
    etcdEndpoints: etcdEndpointsSchema,
    etcdTls: etcdTlsSchema,
    etcdKeepaliveMs: etcdKeepaliveMsSchema,
    keyspaceRoot: keyspaceRootSchema,
    secretsKeyFile: secretsKeyFileSchema,
    name: { type: 'string', default: `scheduler-${process.pid}`, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    intervalMs: { type: 'integer', default: 2000, minimum: 50 },
    lockTtlSeconds: { type: 'integer', default: 10, minimum: 2 },
    provisionTimeoutMs: { type: 'integer', default: 300_000, minimum: 1000 },
    catalogDir: catalogDirSchema,
    controller: { type: 'boolean', default: true },
    mode: { type: 'string', enum: ['active-active', 'leader'], default: 'leader' },
    nodesToScore: { type: 'integer', default: 64, minimum: 1, maximum: 100_000 },
    nodesPerTransaction: { type: 'integer', default: 32, minimum: 1, maximum: 100 },
    transactionsInFlight: { type: 'integer', default: 8, minimum: 1, maximum: 256 },
    replicasPerWave: { type: 'integer', default: 2000, minimum: 1, maximum: 100_000 },
    maxTxnOps: { type: 'integer', default: 128, minimum: 16, maximum: 100_000 },
    scoreWeights: {
      type: 'object',
      required: [],
      additionalProperties: false,
      default: { leastAllocated: 1, binPack: 0, zoneSpread: 1, volumeLocality: 2 },
      properties: {
        leastAllocated: { ...weight, default: 1 },
        binPack: { ...weight, default: 0 },
        zoneSpread: { ...weight, default: 1 },
        volumeLocality: { ...weight, default: 2 },
      },
    },
    faultInjection: {
      type: 'object',
      required: [],
      additionalProperties: false,
      default: { stopAfterLockAcquire: false },
      properties: { stopAfterLockAcquire: { type: 'boolean', default: false } },
    },
    metrics: metricsListenSchema,
    fenceCheckIntervalMs: { type: 'integer', default: 60_000, minimum: 0, maximum: 86_400_000 },
    nodeProbe: {
      type: 'object',
      required: [],
      additionalProperties: false,
      default: { intervalMs: 250, timeoutMs: 500, failuresToSilence: 2 },
      properties: {
        intervalMs: { type: 'integer', default: 250, minimum: 0, maximum: 60_000 },
        timeoutMs: { type: 'integer', default: 500, minimum: 50, maximum: 60_000 },
        failuresToSilence: { type: 'integer', default: 2, minimum: 2, maximum: 100 },
      },
    },
  },
});

/** The Scheduler's options from a compiled config; plan constraints come from the catalog. */
export function schedulerOptionsFrom(config: Readonly<SchedulerConfig>, catalog: Catalog): SchedulerOptions {
  const none: Readonly<Record<string, string>> = Object.freeze({});
  return {
    name: config.name,
    mode: config.mode,
    lockTtlSeconds: config.lockTtlSeconds,
    nodesToScore: config.nodesToScore,
    nodesPerTransaction: config.nodesPerTransaction,
    transactionsInFlight: config.transactionsInFlight,
    replicasPerWave: config.replicasPerWave,
    maxTxnOps: config.maxTxnOps,
    scoreWeights: config.scoreWeights,
    intervalMs: config.intervalMs,
    stopAfterLockAcquire: config.faultInjection.stopAfterLockAcquire,
    requiredLabelsOf: (instance: InstanceRecord) =>
      catalog.byServiceName(instance.serviceName)?.plans[instance.planName]?.constraints?.nodeLabels ?? none,
  };
}
