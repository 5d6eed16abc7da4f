import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { anyObject, nonEmptyText, optional, text, timestamp } from './shared.js';

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
  /** The binding this one rotated (OSB 2.17 `predecessor_binding_id`), kept to answer a repeated request. */
  predecessorId?: string;
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
    predecessorId: optional(nonEmptyText),
  },
};

export const bindingCodec = defineRecord<BindingRecord>({ name: 'binding', schema: bindingSchema });
