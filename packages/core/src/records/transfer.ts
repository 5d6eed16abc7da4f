import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { type SeedSource, seedSourceSchema } from './placement.js';
import { count, figure, flag, nonEmptyText, optional, ordinal, text, timestamp } from './shared.js';

export const transferModes = ['full', 'delta'] as const;

/** What one volume transfer moved (transfer events, relocation and backup records). */
export interface TransferFigures {
  mode: (typeof transferModes)[number];
  /** File content bytes, and the HTTP body bytes including tar framing. */
  bytes: number;
  wireBytes: number;
  files: number;
  deleted: number;
  durationMs: number;
  /** Content throughput, MB/s (10^6 bytes). */
  mbPerSecond: number;
}

/** A transfer under way: what the CLI draws its progress bar from. */
export interface TransferProgressRecord {
  bytes: number;
  files: number;
  plannedBytes?: number;
  plannedFiles?: number;
  elapsedMs: number;
  mbPerSecond: number;
}

export const transferStates = ['copying', 'copied', 'failed'] as const;

/**
 * A seeding agent's progress (`transfers/<id>/<ordinal>/<node>`), under its lease. It is
 * not the replica's status: the replica may be running elsewhere while this node copies it.
 */
export interface TransferStatusRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  from: SeedSource;
  round: number;
  /** `copied`: round `round` is complete and its copy swapped in. */
  state: (typeof transferStates)[number];
  message: string;
  /** With `failed`: the agent tries this round again by itself. */
  willRetry?: boolean;
  /**
   * When the volume last became a complete copy of `from` (kept while the next periodic
   * copy runs: the volume holds that snapshot until the next one is swapped in).
   */
  copiedAt?: string;
  /** Complete copies made from this source so far. */
  snapshots?: number;
  progress?: TransferProgressRecord;
  result?: TransferFigures;
  updatedAt: string;
}

export const transferFiguresSchema: JSONSchemaType<TransferFigures> = {
  type: 'object',
  required: ['mode', 'bytes', 'wireBytes', 'files', 'deleted', 'durationMs', 'mbPerSecond'],
  additionalProperties: true,
  properties: {
    mode: { type: 'string', enum: transferModes },
    bytes: figure,
    wireBytes: figure,
    files: figure,
    deleted: figure,
    durationMs: figure,
    mbPerSecond: figure,
  },
};

export const transferProgressSchema: JSONSchemaType<TransferProgressRecord> = {
  type: 'object',
  required: ['bytes', 'files', 'elapsedMs', 'mbPerSecond'],
  additionalProperties: true,
  properties: {
    bytes: figure,
    files: figure,
    plannedBytes: optional(figure),
    plannedFiles: optional(figure),
    elapsedMs: figure,
    mbPerSecond: figure,
  },
};

const transferStatusSchema: JSONSchemaType<TransferStatusRecord> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'node', 'from', 'round', 'state', 'message', 'updatedAt'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    ordinal,
    node: nonEmptyText,
    from: seedSourceSchema,
    round: count,
    state: { type: 'string', enum: transferStates },
    message: text,
    willRetry: optional(flag),
    copiedAt: optional(timestamp),
    snapshots: optional(count),
    progress: optional(transferProgressSchema),
    result: optional(transferFiguresSchema),
    updatedAt: timestamp,
  },
};

export const transferStatusCodec = defineRecord<TransferStatusRecord>({
  name: 'transfer status',
  schema: transferStatusSchema,
});
