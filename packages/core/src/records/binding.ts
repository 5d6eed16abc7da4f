import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { anyObject, nonEmptyText, text, timestamp } from './shared.js';

/** A binding's credentials (`bindings/<id>/<binding>`, sealed), written and read by the broker. */
export interface BindingRecord {
  id: string;
  instanceId: string;
  name: string;
  username: string;
  password: string;
  createdAt: string;
  context: Record<string, unknown>;
  parameters: Record<string, unknown>;
}

const bindingSchema: JSONSchemaType<BindingRecord> = {
  type: 'object',
  required: ['id', 'instanceId', 'name', 'username', 'password', 'createdAt', 'context', 'parameters'],
  additionalProperties: true,
  properties: {
    id: nonEmptyText,
    instanceId: nonEmptyText,
    name: text,
    username: text,
    password: text,
    createdAt: timestamp,
    context: anyObject,
    parameters: anyObject,
  },
};

export const bindingCodec = defineRecord<BindingRecord>({ name: 'binding', schema: bindingSchema });
