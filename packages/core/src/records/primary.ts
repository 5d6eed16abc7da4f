import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, ordinal, port, text, timestamp } from './shared.js';

/** The current primary of an instance (`primary/<id>`). The key's mod revision is the epoch (fencing token). */
export interface PrimaryRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  host: string;
  port: number;
  electedAt: string;
}

const primarySchema: JSONSchemaType<PrimaryRecord> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'node', 'host', 'port', 'electedAt'],
  additionalProperties: true,
  properties: { instanceId: nonEmptyText, ordinal, node: nonEmptyText, host: text, port, electedAt: timestamp },
};

export const primaryCodec = defineRecord<PrimaryRecord>({ name: 'primary', schema: primarySchema });
