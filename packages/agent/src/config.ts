import { configCompiler, defaultCatalogDir, type Resources } from '@service-foundry/core';

/** Options of one node agent, as written in its JSON config file. */
export interface AgentOptions {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`. Required. */
  etcdEndpoints: string[];
  /** Root of every key this cluster uses. @default '/sf' */
  keyspaceRoot?: string;
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
}

/** The validated, defaulted, frozen form of {@link AgentOptions}. */
export interface AgentConfig {
  etcdEndpoints: string[];
  keyspaceRoot: string;
  node: string;
  address: string;
  capacity: Resources;
  labels: Record<string, string>;
  leaseTtlSeconds: number;
  reconcileIntervalMs: number;
  dockerSocket: string;
  catalogDir: string;
  clusterId: string;
}

const keySegment = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const ipv4 = '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$';

/** ajv's JSONSchemaType<AgentConfig>, taken from core so the agent does not depend on ajv itself. */
type AgentConfigSchema = Parameters<typeof configCompiler<AgentConfig>>[1];

const schema: AgentConfigSchema = {
  type: 'object',
  required: [
    'etcdEndpoints',
    'keyspaceRoot',
    'node',
    'address',
    'capacity',
    'labels',
    'leaseTtlSeconds',
    'reconcileIntervalMs',
    'dockerSocket',
    'catalogDir',
    'clusterId',
  ],
  additionalProperties: false,
  properties: {
    etcdEndpoints: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://[^\\s]+$' } },
    keyspaceRoot: { type: 'string', pattern: '^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$', default: '/sf' },
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
    catalogDir: { type: 'string', minLength: 1, default: defaultCatalogDir() },
    clusterId: { type: 'string', pattern: keySegment, default: 'sf' },
  },
};

/** Validates agent options (unknown fields are errors) and fills in the defaults. */
export const compileAgentConfig: (input: unknown) => Readonly<AgentConfig> = configCompiler<AgentConfig>(
  'agent config',
  schema,
);
