import { defineRecord, nodeFenceSchema } from '@service-foundry/core';
import type { JSONSchemaType } from 'ajv';
import type { DeviceStep } from './device-runner.js';
import type { StoredFenceRecord } from './fence-state-machine.js';
import type { FenceHistoryEntry } from './history.js';
import type { DeviceOutcome, LevelOutcome } from './levels.js';

/**
 * Codecs of the fencing keys, in the style of core's records (core/src/records): every
 * read of `fence/<node>` and `fence-history/…` goes through one of these, and a malformed
 * value is a BadRecordError naming the key and the field. `fence-devices/<node>` has its
 * codec beside its schema, in device-config.ts. Like core's records, every object allows
 * fields it does not know (a newer writer may add some).
 */

const text = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;
const count = { type: 'integer', minimum: 0 } as const;
const duration = { type: 'number', minimum: 0 } as const;

const storedFenceSchema: JSONSchemaType<StoredFenceRecord> = {
  ...nodeFenceSchema,
  properties: {
    ...nodeFenceSchema.properties,
    attemptId: { type: 'string', nullable: true },
    deadline: { type: 'string', nullable: true },
  },
};

// `exitCode` and `signal` are `T | null`, beyond ajv's JSONSchemaType (it types `nullable`
// for optional fields only): this one schema is typed by hand and checked by the tests.
const stepSchema = {
  type: 'object',
  required: ['action', 'ok', 'attempts', 'exitCode', 'signal', 'timedOut', 'stdout', 'stderr', 'durationMs', 'reason'],
  additionalProperties: true,
  properties: {
    action: { type: 'string', enum: ['off', 'on', 'reboot', 'status', 'monitor', 'list', 'metadata'] },
    ok: flag,
    power: { type: 'string', enum: ['on', 'off', 'unknown'], nullable: true },
    attempts: count,
    exitCode: { type: 'integer', nullable: true },
    signal: { type: 'string', nullable: true },
    timedOut: flag,
    stdout: text,
    stderr: text,
    durationMs: duration,
    reason: text,
  },
} as unknown as JSONSchemaType<DeviceStep>;

const deviceOutcomeSchema: JSONSchemaType<DeviceOutcome> = {
  type: 'object',
  required: ['level', 'device', 'agent', 'options', 'ok', 'reason', 'durationMs', 'steps'],
  additionalProperties: true,
  properties: {
    level: count,
    device: text,
    agent: text,
    // Option values are strings, numbers or booleans (redacted); shown, never acted on.
    options: { type: 'object', required: [], additionalProperties: true },
    ok: flag,
    reason: text,
    durationMs: duration,
    steps: { type: 'array', items: stepSchema },
  },
};

const levelOutcomeSchema: JSONSchemaType<LevelOutcome> = {
  type: 'object',
  required: ['level', 'ok', 'devices', 'durationMs'],
  additionalProperties: true,
  properties: { level: count, ok: flag, devices: { type: 'array', items: deviceOutcomeSchema }, durationMs: duration },
};

const historySchema: JSONSchemaType<FenceHistoryEntry> = {
  type: 'object',
  required: [
    'id',
    'node',
    'action',
    'by',
    'reason',
    'startedAt',
    'finishedAt',
    'durationMs',
    'result',
    'detail',
    'ranDevices',
    'recorded',
    'levels',
  ],
  additionalProperties: true,
  properties: {
    id: text,
    node: text,
    action: { type: 'string', enum: ['fence', 'unfence'] },
    by: text,
    reason: text,
    startedAt: text,
    finishedAt: text,
    durationMs: duration,
    result: { type: 'string', enum: ['fenced', 'failed', 'unfenced', 'unfence-failed', 'no-op'] },
    level: { type: 'integer', minimum: 0, nullable: true },
    detail: text,
    ranDevices: flag,
    recorded: flag,
    levels: { type: 'array', items: levelOutcomeSchema },
  },
};

/** `fence/<node>`: core's NodeFenceRecord plus this package's attempt bookkeeping. */
export const storedFenceCodec = defineRecord<StoredFenceRecord>({ name: 'node fence', schema: storedFenceSchema });

/** One `fence-history/<ms>-<id>` entry. */
export const fenceHistoryCodec = defineRecord<FenceHistoryEntry>({ name: 'fence history', schema: historySchema });
