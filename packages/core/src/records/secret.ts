import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, optional, text } from './shared.js';

/**
 * The instance's admin credentials (`secrets/<id>`, sealed), read by agents (container env)
 * and the broker (bindings).
 */
export interface InstanceSecret {
  adminUser: string;
  adminPassword: string;
  /** Replication login used by replicas to stream from the primary. */
  replicationUser?: string;
  replicationPassword?: string;
}

const secretSchema: JSONSchemaType<InstanceSecret> = {
  type: 'object',
  required: ['adminUser', 'adminPassword'],
  additionalProperties: true,
  properties: {
    adminUser: nonEmptyText,
    adminPassword: nonEmptyText,
    replicationUser: optional(text),
    replicationPassword: optional(text),
  },
};

export const secretCodec = defineRecord<InstanceSecret>({ name: 'instance secret', schema: secretSchema });
