import {
  configCompiler,
  type EtcdTlsFiles,
  etcdEndpointsSchema,
  etcdKeepaliveMsSchema,
  etcdTlsSchema,
  keyspaceRootSchema,
  type MetricsListen,
  metricsListenSchema,
} from '@service-foundry/core';

/** Options of one router process; compiled once into a frozen {@link RouterConfig}. */
export interface RouterOptions {
  /** etcd client URLs, e.g. `["https://10.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
  /** The router's etcd identity (CN `sf-router`: it may only read routes) and etcd's CA. @default undefined */
  etcdTls?: EtcdTlsFiles;
  /**
   * gRPC keepalive on the etcd connections, in ms: a member that vanished (host off, link
   * cut) is left after about twice this. 0 sends no pings; etcd closes connections that
   * ping more often than its `--grpc-keepalive-min-time` (default 5 s).
   * @default 0
   */
  etcdKeepaliveMs?: number;
  /** Root of the Service Foundry keyspace in etcd. @default '/sf' */
  keyspaceRoot?: string;
  /** Address the TCP route listeners and the HTTP port bind to. @default '127.0.0.1' */
  listenHost?: string;
  /**
   * Port of the HTTP (Host-header) router; `null` disables it, `0` picks a free port
   * (read the actual one from the running router's `httpPort`).
   * @default null
   */
  httpPort?: number | null;
  /** How long a connection to a route's target may take before the client is dropped. @default 5000 */
  connectTimeoutMs?: number;
  /**
   * A TCP client whose connection the route's target refuses is held this long: the
   * connection is tried again every 100 ms, each time to the route's target then, so the
   * client reaches the new primary as soon as the route moves (a switchover, a failover)
   * instead of failing at once; `0` makes one attempt of `connectTimeoutMs`. A held client
   * has exchanged nothing with any server yet.
   * @default 1000
   */
  holdWhileRefusedMs?: number;
  /**
   * Client sessions let through to one instance at a time when its route record carries no
   * `limits` (records written before limits existed). @default 50
   */
  defaultMaxSessions?: number;
  /**
   * Share of a route's `maxSessions` one client address (an IPv6 client: its /64) may hold,
   * rounded down, at least 1: a single address can never fill a route alone. @default 0.5
   */
  clientRouteShare?: number;
  /**
   * HTTP connections one client address may hold across all HTTP routes: caps how much of
   * the router's fd budget one address can take. (Each TCP route has its own HAProxy
   * process and descriptors, bounded by its route limit.) @default 1000
   */
  maxSessionsPerClient?: number;
  /** A session with no bytes either way for this long is closed; `0` never closes one. @default 300000 */
  idleTimeoutMs?: number;
  /**
   * HTTP connections open at once in the router (each costs it two file descriptors);
   * `null` derives it from `RLIMIT_NOFILE`, keeping a tenth (at least 128) for everything
   * else. TCP routes are not counted: each has its own HAProxy process.
   * @default null
   */
  maxOpenSessions?: number | null;
  /** Refused and idle-closed sessions are logged as one line per route and reason per interval. @default 10000 */
  limitLogIntervalMs?: number;
  /** Where `/metrics` is served (docs/metrics.md); absent: not served. @default undefined */
  metrics?: MetricsListen;
}

export type RouterConfig = Readonly<
  Required<Omit<RouterOptions, 'etcdTls' | 'metrics'>> & Pick<RouterOptions, 'etcdTls' | 'metrics'>
>;

// Ajv's schema type models `nullable` only for optional fields, so the schema is typed
// with httpPort and maxOpenSessions optional; `default: null` makes them always present.
type SchemaShape = Required<Omit<RouterOptions, 'httpPort' | 'etcdTls' | 'maxOpenSessions' | 'metrics'>> &
  Pick<RouterOptions, 'httpPort' | 'etcdTls' | 'maxOpenSessions' | 'metrics'>;

const compile = configCompiler<SchemaShape>('router config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints'],
  properties: {
    etcdEndpoints: etcdEndpointsSchema,
    etcdTls: etcdTlsSchema,
    etcdKeepaliveMs: etcdKeepaliveMsSchema,
    keyspaceRoot: keyspaceRootSchema,
    listenHost: { type: 'string', default: '127.0.0.1', minLength: 1 },
    httpPort: { type: 'integer', nullable: true, default: null, minimum: 0, maximum: 65535 },
    connectTimeoutMs: { type: 'integer', default: 5000, minimum: 1, maximum: 600_000 },
    holdWhileRefusedMs: { type: 'integer', default: 1000, minimum: 0, maximum: 60_000 },
    defaultMaxSessions: { type: 'integer', default: 50, minimum: 1, maximum: 1_000_000 },
    clientRouteShare: { type: 'number', default: 0.5, exclusiveMinimum: 0, maximum: 1 },
    maxSessionsPerClient: { type: 'integer', default: 1000, minimum: 1, maximum: 1_000_000 },
    idleTimeoutMs: { type: 'integer', default: 300_000, minimum: 0, maximum: 2_147_483_647 },
    maxOpenSessions: { type: 'integer', nullable: true, default: null, minimum: 1, maximum: 1_000_000 },
    limitLogIntervalMs: { type: 'integer', default: 10_000, minimum: 100, maximum: 3_600_000 },
    metrics: metricsListenSchema,
  },
});

/** Validates and defaults router options; throws InvalidConfigError (SF_ERR_INVALID_CONFIG). */
export function compileRouterConfig(input: unknown): RouterConfig {
  return compile(input) as RouterConfig;
}
