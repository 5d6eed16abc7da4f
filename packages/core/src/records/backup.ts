import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, optional, ordinal, text, timestamp } from './shared.js';
import {
  type TransferFigures,
  type TransferProgressRecord,
  transferFiguresSchema,
  transferProgressSchema,
} from './transfer.js';

export const backupStates = ['requested', 'running', 'completed', 'failed'] as const;
export type BackupState = (typeof backupStates)[number];

export const backupMethods = ['hook', 'stopped'] as const;

/**
 * One backup of an instance (`backups/<id>/<backupId>`): requested by the broker, taken by
 * the agent of the primary's node into its backup store, listed by `sf backups`.
 */
export interface BackupRecord {
  id: string;
  instanceId: string;
  instanceName: string;
  serviceName: string;
  planName: string;
  state: BackupState;
  message: string;
  requestedBy: string;
  requestedAt: string;
  /** The node (and replica) that took it; the backup lives in that agent's store. */
  node?: string;
  ordinal?: number;
  /** `hook`: the service's own consistent copy (catalog `backup.prepare`); `stopped`: copied while stopped. */
  method?: (typeof backupMethods)[number];
  startedAt?: string;
  completedAt?: string;
  figures?: TransferFigures;
  progress?: TransferProgressRecord;
}

const backupSchema: JSONSchemaType<BackupRecord> = {
  type: 'object',
  required: [
    'id',
    'instanceId',
    'instanceName',
    'serviceName',
    'planName',
    'state',
    'message',
    'requestedBy',
    'requestedAt',
  ],
  additionalProperties: true,
  properties: {
    id: nonEmptyText,
    instanceId: nonEmptyText,
    instanceName: text,
    serviceName: text,
    planName: text,
    state: { type: 'string', enum: backupStates },
    message: text,
    requestedBy: text,
    requestedAt: timestamp,
    node: optional(nonEmptyText),
    ordinal: optional(ordinal),
    method: optional({ type: 'string', enum: backupMethods }),
    startedAt: optional(timestamp),
    completedAt: optional(timestamp),
    figures: optional(transferFiguresSchema),
    progress: optional(transferProgressSchema),
  },
};

export const backupCodec = defineRecord<BackupRecord>({ name: 'backup', schema: backupSchema });
