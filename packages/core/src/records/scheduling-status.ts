import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { count, flag, nonEmptyText, optional, ordinal, text, timestamp } from './shared.js';

/** One replica the scheduler could not place, and why. */
export interface PendingReplica {
  ordinal: number;
  reason: string;
  /**
   * No live node has the free cpu, memory and disk the replica needs, whatever else rules
   * it out (the controller fails a provision on it).
   */
  noRoom?: boolean;
}

/** Why replicas of an instance are not (all) placed (`scheduling/<id>`), for `sf service`. */
export interface SchedulingStatusRecord {
  instanceId: string;
  desired: number;
  placed: number;
  /** One entry per pending replica. */
  pending: PendingReplica[];
  updatedAt: string;
}

const schedulingStatusSchema: JSONSchemaType<SchedulingStatusRecord> = {
  type: 'object',
  required: ['instanceId', 'desired', 'placed', 'pending', 'updatedAt'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    desired: count,
    placed: count,
    pending: {
      type: 'array',
      items: {
        type: 'object',
        required: ['ordinal', 'reason'],
        additionalProperties: true,
        properties: { ordinal, reason: text, noRoom: optional(flag) },
      },
    },
    updatedAt: timestamp,
  },
};

export const schedulingStatusCodec = defineRecord<SchedulingStatusRecord>({
  name: 'scheduling status',
  schema: schedulingStatusSchema,
});
