import { configCompiler } from '@service-foundry/core';

/** Options of one router process; compiled once into a frozen {@link RouterConfig}. */
export interface RouterOptions {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
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
}

export type RouterConfig = Readonly<Required<RouterOptions>>;

// Ajv's schema type models `nullable` only for optional fields, so the schema is typed
// with httpPort optional; `default: null` makes it always present after compiling.
type SchemaShape = Required<Omit<RouterOptions, 'httpPort'>> & Pick<RouterOptions, 'httpPort'>;

const compile = configCompiler<SchemaShape>('router config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints'],
  properties: {
    etcdEndpoints: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
    keyspaceRoot: { type: 'string', default: '/sf', pattern: '^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$' },
    listenHost: { type: 'string', default: '127.0.0.1', minLength: 1 },
    httpPort: { type: 'integer', nullable: true, default: null, minimum: 0, maximum: 65535 },
    connectTimeoutMs: { type: 'integer', default: 5000, minimum: 1, maximum: 600_000 },
  },
});

/** Validates and defaults router options; throws InvalidConfigError (SF_ERR_INVALID_CONFIG). */
export function compileRouterConfig(input: unknown): RouterConfig {
  return compile(input) as RouterConfig;
}
