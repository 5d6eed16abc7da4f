import { configCompiler, InvalidConfigError } from '@service-foundry/core';

export interface RouterPortRange {
  min: number;
  max: number;
}

export interface BrokerConfig {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
  /** Root of every etcd key. @default '/sf' */
  keyspaceRoot: string;
  /** Address the HTTP server listens on. @default '127.0.0.1' */
  host: string;
  /** Port the HTTP server listens on; 0 picks a free port. @default 8470 */
  port: number;
  /** HTTP basic-auth user of the platform (and of `sf`). Required. */
  username: string;
  /** HTTP basic-auth password; at least 12 characters. Required. */
  password: string;
  /** Services catalog folder. @default services-catalog/ of this checkout (core `defaultCatalogDir()`) */
  catalogDir: string;
  /**
   * Address of the router: put into binding credentials, and used by the broker itself to
   * reach an instance (through the router, which forwards to the current primary).
   * @default '127.0.0.1'
   */
  routerHost: string;
  /** Ports the router may listen on, one per instance (inclusive). @default { min: 40000, max: 40999 } */
  routerPortRange: RouterPortRange;
  /** Deadline for connecting to an instance and running a binding's statements. @default 30000 */
  bindTimeoutMs: number;
}

export const compileBrokerConfig = configCompiler<BrokerConfig>('broker config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints', 'username', 'password'],
  properties: {
    etcdEndpoints: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
    keyspaceRoot: { type: 'string', default: '/sf', pattern: '^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$' },
    host: { type: 'string', default: '127.0.0.1', minLength: 1 },
    port: { type: 'integer', default: 8470, minimum: 0, maximum: 65535 },
    username: { type: 'string', minLength: 1, pattern: '^[^:]+$' },
    password: { type: 'string', minLength: 12 },
    catalogDir: { type: 'string', default: '' },
    routerHost: { type: 'string', default: '127.0.0.1', minLength: 1 },
    routerPortRange: {
      type: 'object',
      default: { min: 40000, max: 40999 },
      additionalProperties: false,
      required: ['min', 'max'],
      properties: {
        min: { type: 'integer', minimum: 1, maximum: 65535 },
        max: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    bindTimeoutMs: { type: 'integer', default: 30_000, minimum: 100 },
  },
});

/** Validates options, including the rule a schema cannot express (range order). */
export function loadBrokerConfig(input: unknown): Readonly<BrokerConfig> {
  const config = compileBrokerConfig(input);
  const { min, max } = config.routerPortRange;
  if (min > max)
    throw new InvalidConfigError('broker config', [`/routerPortRange: min ${min} is greater than max ${max}`]);
  return config;
}
