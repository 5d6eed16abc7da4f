import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { epoch, nonEmptyText, optional, ordinal, text, timestamp } from './shared.js';

/**
 * A planned primary change of a replicated instance (`switchovers/<id>`), written by the
 * broker (`requested`) and driven by the controller (docs/failover.md#switchover has the
 * state machine): requested → stopping (the old primary stops: no new write is accepted)
 * → promoting (the target holds everything the old primary wrote; primary key moved at
 * epoch + 1) → done once the route names the target; any step → failed. The last one
 * per instance stays for `sf switchover` and `sf service`.
 */
export const switchoverPhases = ['requested', 'stopping', 'promoting', 'done', 'failed'] as const;
export type SwitchoverPhase = (typeof switchoverPhases)[number];

/** One replica of the instance: which ordinal on which node. */
export interface SwitchoverReplica {
  ordinal: number;
  node: string;
}

export interface SwitchoverRecord {
  instanceId: string;
  /** The primary when the switchover was asked for, and the epoch it served at. */
  from: SwitchoverReplica;
  fromEpoch: number;
  /** The replica to promote, chosen by the broker (the operator's `--to` or the most advanced in sync). */
  to: SwitchoverReplica;
  phase: SwitchoverPhase;
  message: string;
  /** Stable code (`SF_ERR_*`) of a refusal or failure. */
  code?: string;
  requestedBy: string;
  requestedAt: string;
  /** When the phase last changed (the deadlines of `stopping` and `promoting` count from it). */
  updatedAt: string;
  /** When the controller told the old primary to stop: it accepts no new write from then on. */
  stoppingAt?: string;
  /** When the old primary's agent reported it stopped: positions read after it count. */
  stoppedAt?: string;
  /** The epoch the target was promoted at. */
  toEpoch?: number;
  /** When the route named the target. */
  switchedAt?: string;
  /**
   * `stoppingAt` → route switched: at most how long writes through the router could not be
   * served (the flush before the stop runs while the old primary still serves them).
   */
  gapMs?: number;
}

const replicaSchema: JSONSchemaType<SwitchoverReplica> = {
  type: 'object',
  required: ['ordinal', 'node'],
  additionalProperties: true,
  properties: { ordinal, node: nonEmptyText },
};

const switchoverSchema: JSONSchemaType<SwitchoverRecord> = {
  type: 'object',
  required: ['instanceId', 'from', 'fromEpoch', 'to', 'phase', 'message', 'requestedBy', 'requestedAt', 'updatedAt'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    from: replicaSchema,
    fromEpoch: epoch,
    to: replicaSchema,
    phase: { type: 'string', enum: switchoverPhases },
    message: text,
    code: optional(text),
    requestedBy: text,
    requestedAt: timestamp,
    updatedAt: timestamp,
    stoppingAt: optional(timestamp),
    stoppedAt: optional(timestamp),
    toEpoch: optional(epoch),
    switchedAt: optional(timestamp),
    gapMs: optional({ type: 'number', minimum: 0 }),
  },
};

export const switchoverCodec = defineRecord<SwitchoverRecord>({ name: 'switchover', schema: switchoverSchema });
