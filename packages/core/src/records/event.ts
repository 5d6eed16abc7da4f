import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { optional, text, timestamp } from './shared.js';

/** An operator-visible event (`events/<ms>-<rand>`, 24 h lease), listed by `sf events`. */
export interface EventRecord {
  at: string;
  kind: string;
  message: string;
  instanceId?: string;
  node?: string;
  source: string;
}

const eventSchema: JSONSchemaType<EventRecord> = {
  type: 'object',
  required: ['at', 'kind', 'message', 'source'],
  additionalProperties: true,
  properties: {
    at: timestamp,
    kind: text,
    message: text,
    instanceId: optional(text),
    node: optional(text),
    source: text,
  },
};

export const eventCodec = defineRecord<EventRecord>({ name: 'event', schema: eventSchema });
