import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { nonEmptyText, optional, text, timestamp } from './shared.js';

export const fenceStates = ['fencing', 'fenced', 'failed', 'unfenced'] as const;
export type FenceState = (typeof fenceStates)[number];

/**
 * A node's STONITH state (`fence/<node>`). `fenced` is the confirmation the controller and
 * the scheduler wait for before they move a stateful replica off a node that stopped
 * answering. The fencing package adds its attempt bookkeeping (`StoredFenceRecord`).
 */
export interface NodeFenceRecord {
  node: string;
  state: FenceState;
  reason: string;
  /** Who asked: `controller`, or an operator's name for manual fencing. */
  by: string;
  at: string;
  /** The level that succeeded, when fenced. */
  level?: number;
}

/** Exported as its literal type (`satisfies`) so the fencing package can extend it. */
export const nodeFenceSchema = {
  type: 'object',
  required: ['node', 'state', 'reason', 'by', 'at'],
  additionalProperties: true,
  properties: {
    node: nonEmptyText,
    state: { type: 'string', enum: fenceStates },
    reason: text,
    by: text,
    at: timestamp,
    level: optional({ type: 'integer', minimum: 0 }),
  },
} satisfies JSONSchemaType<NodeFenceRecord>;

export const nodeFenceCodec = defineRecord<NodeFenceRecord>({ name: 'node fence', schema: nodeFenceSchema });
