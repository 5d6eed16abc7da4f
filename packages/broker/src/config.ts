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
  secretsKeyFileSchema,
} from '@service-foundry/core';

export interface RouterPortRange {
  min: number;
  max: number;
}

/** One HTTP basic-auth login. */
export interface BrokerLogin {
  /** 1 to 64 letters, digits and `. _ @ + -` (it is recorded as "by" in audit fields). Required. */
  username: string;
  /** At least 12 characters. Required. */
  password: string;
}

/** `operator`: the operator API and the OSB API (what `sf` uses); `viewer`: GET/HEAD of the operator API only. */
export type OperatorRole = 'operator' | 'viewer';

export interface OperatorLogin extends BrokerLogin {
  /** What the login may do. Required. */
  role: OperatorRole;
}

export interface BrokerConfig {
  /** etcd client URLs, e.g. `["https://10.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
  /** The broker's etcd identity (CN `sf-broker`) and etcd's CA; required for `https://`. @default undefined */
  etcdTls?: EtcdTlsFiles;
  /**
   * gRPC keepalive on the etcd connections, in ms: a member that vanished (host off, link
   * cut) is left after about twice this. 0 sends no pings; etcd closes connections that
   * ping more often than its `--grpc-keepalive-min-time` (default 5 s).
   * @default 0
   */
  etcdKeepaliveMs: number;
  /** Root of every etcd key. @default '/sf' */
  keyspaceRoot: string;
  /** Key file that seals the credentials the broker stores in etcd (core SecretBox). Required. */
  secretsKeyFile: string;
  /** Address the HTTP server listens on. @default '127.0.0.1' */
  host: string;
  /** Port the HTTP server listens on; 0 picks a free port. @default 8470 */
  port: number;
  /** The platform's login (Cloud Foundry, Kubernetes…): reaches the OSB API `/v2/*` only. Required. */
  osb: BrokerLogin;
  /** Logins of operators and `sf` for the operator API `/sf/v1/*`; at least one. Required. */
  operators: OperatorLogin[];
  /** Services catalog folder. @default services-catalog/ of this checkout (core `defaultCatalogDir()`) */
  catalogDir: string;
  /**
   * Address of the router: put into binding credentials, and used by the broker itself to
   * reach an instance (through the router, which forwards to the current primary).
   * @default '127.0.0.1'
   */
  routerHost: string;
  /**
   * Every router's address, when there are several (they listen on the same ports): bindings
   * name them all, and the broker's own sessions try them in order. @default [routerHost]
   */
  routerHosts?: string[];
  /** Ports the router may listen on, one per instance (inclusive). @default { min: 30000, max: 30999 } (below Linux's ephemeral ports, 32768–60999) */
  routerPortRange: RouterPortRange;
  /** Deadline for connecting to an instance and running a binding's statements. @default 30000 */
  bindTimeoutMs: number;
  /**
   * The cluster CA (PEM file) the services' certificates chain to. With it, the broker's
   * own sessions to TLS services go through the router with TLS, verifying that the
   * server's certificate names `routerHost`; bindings carry it (`ca_certificate`) and ask
   * for verification (`sslmode=verify-full`, `rediss://`). Without it, both are plaintext.
   * @default undefined
   */
  serviceCaFile?: string;
  /** Where `/metrics` is served (docs/metrics.md); absent: not served. @default undefined */
  metrics?: MetricsListen;
}

const login = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: {
    username: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$' },
    password: { type: 'string', minLength: 12, maxLength: 1024 },
  },
} as const;

export const compileBrokerConfig = configCompiler<BrokerConfig>('broker config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints', 'secretsKeyFile', 'osb', 'operators'],
  properties: {
    etcdEndpoints: etcdEndpointsSchema,
    etcdTls: etcdTlsSchema,
    etcdKeepaliveMs: etcdKeepaliveMsSchema,
    keyspaceRoot: keyspaceRootSchema,
    secretsKeyFile: secretsKeyFileSchema,
    host: { type: 'string', default: '127.0.0.1', minLength: 1 },
    port: { type: 'integer', default: 8470, minimum: 0, maximum: 65535 },
    osb: login,
    operators: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        ...login,
        required: [...login.required, 'role'],
        properties: { ...login.properties, role: { type: 'string', enum: ['operator', 'viewer'] } },
      },
    },
    catalogDir: catalogDirSchema,
    routerHost: { type: 'string', default: '127.0.0.1', minLength: 1 },
    routerHosts: {
      type: 'array',
      minItems: 1,
      maxItems: 8,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:-]+$' },
      nullable: true,
    },
    routerPortRange: {
      type: 'object',
      default: { min: 30000, max: 30999 },
      additionalProperties: false,
      required: ['min', 'max'],
      properties: {
        min: { type: 'integer', minimum: 1, maximum: 65535 },
        max: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    bindTimeoutMs: { type: 'integer', default: 30_000, minimum: 100 },
    serviceCaFile: { type: 'string', pattern: '^/', nullable: true },
    metrics: metricsListenSchema,
  },
});

/** Validates options, including the rules a schema cannot express (range order, one login per user name). */
export function loadBrokerConfig(input: unknown): Readonly<BrokerConfig> {
  const config = compileBrokerConfig(input);
  const { min, max } = config.routerPortRange;
  if (min > max)
    throw new InvalidConfigError('broker config', [`/routerPortRange: min ${min} is greater than max ${max}`]);
  // A user name names one login: otherwise which role a request has would depend on its password.
  const seen = new Set([config.osb.username]);
  for (const [index, operator] of config.operators.entries()) {
    if (seen.has(operator.username)) {
      throw new InvalidConfigError('broker config', [
        `/operators/${index}/username: ${JSON.stringify(operator.username)} is already the user name of another login`,
      ]);
    }
    seen.add(operator.username);
  }
  return config;
}

/** The routers' addresses, the first being where the broker's own sessions go first. */
export function routerAddresses(config: Pick<BrokerConfig, 'routerHost' | 'routerHosts'>): readonly string[] {
  return config.routerHosts?.length ? config.routerHosts : [config.routerHost];
}
