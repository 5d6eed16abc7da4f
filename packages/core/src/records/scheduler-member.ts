import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, timestamp } from './shared.js';

export const schedulerModes = ['active-active', 'leader'] as const;

/** A running scheduler (`schedulers/<name>`), under its session lease; the members share (or elect) the work. */
export interface SchedulerMemberRecord {
  name: string;
  mode: (typeof schedulerModes)[number];
  startedAt: string;
}

const memberSchema: JSONSchemaType<SchedulerMemberRecord> = {
  type: 'object',
  required: ['name', 'mode', 'startedAt'],
  additionalProperties: true,
  properties: { name: nonEmptyText, mode: { type: 'string', enum: schedulerModes }, startedAt: timestamp },
};

export const schedulerMemberCodec = defineRecord<SchedulerMemberRecord>({
  name: 'scheduler member',
  schema: memberSchema,
});
