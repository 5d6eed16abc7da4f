import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { flag, nonEmptyText, text, timestamp } from './shared.js';

/**
 * Operator controls on a node (`node-controls/<node>`). A cordoned node takes no new
 * replicas; a draining one also sheds its replicas.
 */
export interface NodeControlRecord {
  node: string;
  cordoned: boolean;
  draining: boolean;
  reason: string;
  updatedAt: string;
  by: string;
}

const nodeControlSchema: JSONSchemaType<NodeControlRecord> = {
  type: 'object',
  required: ['node', 'cordoned', 'draining', 'reason', 'updatedAt', 'by'],
  additionalProperties: true,
  properties: { node: nonEmptyText, cordoned: flag, draining: flag, reason: text, updatedAt: timestamp, by: text },
};

export const nodeControlCodec = defineRecord<NodeControlRecord>({ name: 'node control', schema: nodeControlSchema });
