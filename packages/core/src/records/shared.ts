import type { JSONSchemaType } from 'ajv';

/**
 * Enums and small shapes several records share, each written once: the records, the
 * catalog's plan defaults and the broker's parameters all take their lists from here.
 */

/** When a write is acknowledged: DRBD's protocols A, B and C. */
export const durabilities = ['async', 'received', 'remote-fsync'] as const;
export type Durability = (typeof durabilities)[number];

/** How the service flushes its own writes. */
export const localIos = ['fsync', 'batched', 'unsafe'] as const;
export type LocalIo = (typeof localIos)[number];

export const fencingPolicies = ['required', 'best-effort', 'off'] as const;
export type FencingPolicy = (typeof fencingPolicies)[number];

export const replicaRoles = ['primary', 'replica'] as const;
export type ReplicaRole = (typeof replicaRoles)[number];

/** Resources a replica asks for and a node offers. cpu in millicores. */
export interface Resources {
  cpuMillis: number;
  memoryMb: number;
  diskMb: number;
}

/** CPU and memory limits a container runs with (disk is a reservation on the node, not a limit). */
export interface ContainerLimits {
  cpuMillis: number;
  memoryMb: number;
}

/** Where a service answers: a host name or address and a port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** The IO settings a replica's service applies (catalog `replication.configure`). */
export interface IoPolicy {
  durability: Durability;
  localIo: LocalIo;
}

/** Two IO settings ask for the same thing (both absent counts as the same). */
export function sameIo(a: IoPolicy | undefined, b: IoPolicy | undefined): boolean {
  return a?.durability === b?.durability && a?.localIo === b?.localIo;
}

// Schema pieces. Records are read by older and newer processes alike: every object allows
// fields it does not know (`additionalProperties: true`), so a newer writer may add some.

export const text = { type: 'string' } as const;
export const nonEmptyText = { type: 'string', minLength: 1 } as const;
/** A Docker image reference (`name[:tag][@digest]`): no spaces, nothing taken for an option. */
export const imageReferencePattern = '^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$';
/** ISO-8601 times are stored as text; readers `Date.parse` them and cope with NaN. */
export const timestamp = text;
export const flag = { type: 'boolean' } as const;
export const count = { type: 'integer', minimum: 0 } as const;
export const ordinal = count;
/** A mod revision of etcd used as an epoch (0: bootstrap, before the first election). */
export const epoch = count;
export const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
export const figure = { type: 'number', minimum: 0 } as const;

/** Any JSON object (platform context, user parameters), kept as written. */
export const anyObject: JSONSchemaType<Record<string, unknown>> = {
  type: 'object',
  required: [],
  additionalProperties: true,
};

export const stringMap: JSONSchemaType<Record<string, string>> = {
  type: 'object',
  required: [],
  additionalProperties: { type: 'string' },
};

export const resourcesSchema: JSONSchemaType<Resources> = {
  type: 'object',
  required: ['cpuMillis', 'memoryMb', 'diskMb'],
  additionalProperties: true,
  properties: { cpuMillis: count, memoryMb: count, diskMb: count },
};

export const containerLimitsSchema: JSONSchemaType<ContainerLimits> = {
  type: 'object',
  required: ['cpuMillis', 'memoryMb'],
  additionalProperties: true,
  properties: { cpuMillis: count, memoryMb: count },
};

export const endpointSchema: JSONSchemaType<Endpoint> = {
  type: 'object',
  required: ['host', 'port'],
  additionalProperties: true,
  properties: { host: nonEmptyText, port },
};

export const ioPolicySchema: JSONSchemaType<IoPolicy> = {
  type: 'object',
  required: ['durability', 'localIo'],
  additionalProperties: true,
  properties: {
    durability: { type: 'string', enum: durabilities },
    localIo: { type: 'string', enum: localIos },
  },
};

/** `schema` for an optional field (see RecordDefinition.schema: absent is fine, null is not). */
export function optional<S extends object>(schema: S): S & { nullable: true } {
  return { ...schema, nullable: true };
}
