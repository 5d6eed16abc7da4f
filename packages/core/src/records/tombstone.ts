import type { JSONSchemaType } from 'ajv';
import { defineRecord, keyTail } from './codec.js';
import type { InstanceRecord } from './instance.js';
import { nonEmptyText, text, timestamp } from './shared.js';

/**
 * How long the record of a deleted instance stays (`tombstones/<id>`, under a lease of this
 * TTL). OSB tells "deleted" (410 Gone) from "never existed" (404) on `last_operation`; a
 * platform polls a deprovision until it sees 410, so the record must outlive any sane
 * polling. Seven days is Cloud Foundry's default maximum polling duration.
 */
export const tombstoneTtlSeconds = 7 * 24 * 3600;

/**
 * That an instance existed and was deleted (`tombstones/<id>`): written by the controller
 * in the transaction that deletes the instance, read by the broker (`last_operation`).
 */
export interface InstanceTombstoneRecord {
  id: string;
  serviceId: string;
  planId: string;
  /** The operation that deleted it (the platform polls this one). */
  operationId: string;
  deletedAt: string;
}

const tombstoneSchema: JSONSchemaType<InstanceTombstoneRecord> = {
  type: 'object',
  required: ['id', 'serviceId', 'planId', 'operationId', 'deletedAt'],
  additionalProperties: true,
  properties: {
    id: nonEmptyText,
    serviceId: text,
    planId: text,
    operationId: text,
    deletedAt: timestamp,
  },
};

export const tombstoneCodec = defineRecord<InstanceTombstoneRecord>({
  name: 'instance tombstone',
  schema: tombstoneSchema,
  check: (key, record) => {
    const [idFromKey] = keyTail(key, 1);
    return record.id === idFromKey ? [] : [`tombstone stored under ${idFromKey} names instance ${record.id}`];
  },
});

/** The tombstone of `instance`, deleted at `at`. */
export function instanceTombstone(instance: InstanceRecord, at: Date): InstanceTombstoneRecord {
  return {
    id: instance.id,
    serviceId: instance.serviceId,
    planId: instance.planId,
    operationId: instance.operation.id,
    deletedAt: at.toISOString(),
  };
}
