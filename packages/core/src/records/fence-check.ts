import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { flag, nonEmptyText, optional, text, timestamp } from './shared.js';

/** One device's answer to the controller's periodic `status` check. */
export interface FenceDeviceCheck {
  /** 1-based fence level the device belongs to. */
  level: number;
  device: string;
  agent: string;
  /** The device answered (ON or OFF); false: it failed, timed out or was refused. */
  ok: boolean;
  /** What `status` said about the node's power. */
  power?: 'on' | 'off' | 'unknown';
  /** Why it failed; empty when ok. */
  reason: string;
  durationMs: number;
}

/**
 * The last health check of a node's fence devices (`fence-checks/<node>`), written by the
 * controller every few minutes: whether fencing the node would find its devices working.
 * `sf explain` reads it with its age.
 */
export interface FenceCheckRecord {
  node: string;
  checkedAt: string;
  devices: FenceDeviceCheck[];
}

const fenceCheckSchema: JSONSchemaType<FenceCheckRecord> = {
  type: 'object',
  required: ['node', 'checkedAt', 'devices'],
  additionalProperties: true,
  properties: {
    node: nonEmptyText,
    checkedAt: timestamp,
    devices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['level', 'device', 'agent', 'ok', 'reason', 'durationMs'],
        additionalProperties: true,
        properties: {
          level: { type: 'integer', minimum: 1 },
          device: text,
          agent: text,
          ok: flag,
          power: optional({ type: 'string', enum: ['on', 'off', 'unknown'] }),
          reason: text,
          durationMs: { type: 'number', minimum: 0 },
        },
      },
    },
  },
};

export const fenceCheckCodec = defineRecord<FenceCheckRecord>({ name: 'fence check', schema: fenceCheckSchema });
