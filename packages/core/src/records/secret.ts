import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { count, nonEmptyText, optional, text } from './shared.js';

/** The passwords of the generation before the current one, accepted while a rotation runs. */
export interface PreviousPasswords {
  adminPassword: string;
  replicationPassword?: string;
}

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
  /**
   * How many times the passwords were rotated (`sf rotate-credentials`). Absent: never.
   * Replicas report the generation their server has taken on.
   */
  generation?: number;
  /**
   * Present while a rotation runs: the passwords it replaces. Servers that can (Redis ACL
   * users) accept both until every replica has the new ones; clients of the admin login
   * (the broker's binding drivers) try the current one first, then these.
   */
  previous?: PreviousPasswords;
}

const previousSchema: JSONSchemaType<PreviousPasswords> = {
  type: 'object',
  required: ['adminPassword'],
  additionalProperties: false,
  properties: { adminPassword: nonEmptyText, replicationPassword: optional(nonEmptyText) },
};

const secretSchema: JSONSchemaType<InstanceSecret> = {
  type: 'object',
  required: ['adminUser', 'adminPassword'],
  additionalProperties: true,
  properties: {
    adminUser: nonEmptyText,
    adminPassword: nonEmptyText,
    replicationUser: optional(text),
    replicationPassword: optional(text),
    generation: optional(count),
    previous: { ...previousSchema, nullable: true },
  },
};

export const secretCodec = defineRecord<InstanceSecret>({ name: 'instance secret', schema: secretSchema });

/** The generation a secret record is at (0: never rotated). */
export function secretGeneration(secret: Pick<InstanceSecret, 'generation'>): number {
  return secret.generation ?? 0;
}

/**
 * The two steps of a password rotation each replica's server goes through (the catalog's
 * `rotatePasswords {{phase}}`): first the new passwords are taken on while the previous
 * ones may still be accepted, then, once every replica has them, only the new ones are.
 */
export const rotationPhases = ['accept-previous', 'new-only'] as const;
export type RotationPhase = (typeof rotationPhases)[number];
