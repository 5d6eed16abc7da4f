import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, optional, type Resources, resourcesSchema, stringMap, text, timestamp } from './shared.js';

/** Written by an agent under its lease (`nodes/<node>`): the node is alive while this key exists. */
export interface NodeRecord {
  name: string;
  /** Address containers publish their ports on; the router connects here. */
  address: string;
  capacity: Resources;
  labels: Record<string, string>;
  startedAt: string;
  /**
   * The agent's volume server (`http://address:port`): other agents pull volume snapshots
   * from it (relocation, restores), authenticated with the cluster secret. Absent when the
   * agent serves no volumes.
   */
  volumeUrl?: string;
}

/** One reserved replica on a node, as recorded in the node's allocation. */
export interface AllocatedReplica {
  instanceId: string;
  ordinal: number;
  resources: Resources;
}

/**
 * The node's allocation ledger (`allocations/<node>`): which replicas hold how much of its
 * capacity. Written only by transactions that compare its mod revision, so concurrent
 * schedulers cannot over-commit a node (I5).
 */
export interface NodeAllocation {
  node: string;
  /** Keyed by `<instanceId>/<ordinal>`. */
  replicas: Record<string, AllocatedReplica>;
}

const nodeSchema: JSONSchemaType<NodeRecord> = {
  type: 'object',
  required: ['name', 'address', 'capacity', 'labels', 'startedAt'],
  additionalProperties: true,
  properties: {
    name: nonEmptyText,
    address: nonEmptyText,
    capacity: resourcesSchema,
    labels: stringMap,
    startedAt: timestamp,
    volumeUrl: optional(text),
  },
};

const allocatedReplicaSchema: JSONSchemaType<AllocatedReplica> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'resources'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    ordinal: { type: 'integer', minimum: 0 },
    resources: resourcesSchema,
  },
};

const allocationSchema: JSONSchemaType<NodeAllocation> = {
  type: 'object',
  required: ['node', 'replicas'],
  additionalProperties: true,
  properties: {
    node: nonEmptyText,
    replicas: { type: 'object', required: [], additionalProperties: allocatedReplicaSchema },
  },
};

export const nodeCodec = defineRecord<NodeRecord>({ name: 'node', schema: nodeSchema });
export const allocationCodec = defineRecord<NodeAllocation>({ name: 'node allocation', schema: allocationSchema });
