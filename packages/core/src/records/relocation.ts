import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { flag, nonEmptyText, optional, ordinal, text, timestamp } from './shared.js';
import { type TransferFigures, transferFiguresSchema } from './transfer.js';

/**
 * A planned relocation of one replica (`relocations/<id>/<ordinal>`), written by the broker
 * (`requested`) and driven by the controller (docs/volumes.md has the state machine):
 *
 * requested → copying (pre-copy while it runs) → stopping (source stopped) → final (last
 * delta) → switching (placement, epoch, assignments moved) → done; any step → failed,
 * which before `switching` restarts the source and leaves the data where it was.
 */
export const relocationPhases = ['requested', 'copying', 'stopping', 'final', 'switching', 'done', 'failed'] as const;
export type RelocationPhase = (typeof relocationPhases)[number];

export const relocationReasons = ['operator', 'drain'] as const;

export interface RelocationRecord {
  instanceId: string;
  ordinal: number;
  /** Node the replica is on when the relocation was asked for. */
  from: string;
  /** Target node: given by the operator, or chosen by the controller in `requested`. */
  to?: string;
  /** Keep the old copy's volume on `from` (a standby copy) instead of deleting it. */
  keepSource: boolean;
  phase: RelocationPhase;
  message: string;
  /** `operator` (sf relocate) or `drain` (sf node drain). */
  reason: (typeof relocationReasons)[number];
  requestedBy: string;
  requestedAt: string;
  updatedAt: string;
  /** Round 1: the full copy while the service runs. */
  precopy?: TransferFigures;
  /** Round 2: what changed during round 1, still while it runs (keeps the final delta small). */
  catchUp?: TransferFigures;
  /** The last round, with the service stopped. */
  final?: TransferFigures;
  /** When the source container was stopped, and when clients were routed to the target. */
  stoppedAt?: string;
  switchedAt?: string;
  /** stoppedAt → the route names the target. */
  downtimeMs?: number;
}

const relocationSchema: JSONSchemaType<RelocationRecord> = {
  type: 'object',
  required: [
    'instanceId',
    'ordinal',
    'from',
    'keepSource',
    'phase',
    'message',
    'reason',
    'requestedBy',
    'requestedAt',
    'updatedAt',
  ],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    ordinal,
    from: nonEmptyText,
    to: optional(nonEmptyText),
    keepSource: flag,
    phase: { type: 'string', enum: relocationPhases },
    message: text,
    reason: { type: 'string', enum: relocationReasons },
    requestedBy: text,
    requestedAt: timestamp,
    updatedAt: timestamp,
    precopy: optional(transferFiguresSchema),
    catchUp: optional(transferFiguresSchema),
    final: optional(transferFiguresSchema),
    stoppedAt: optional(timestamp),
    switchedAt: optional(timestamp),
    downtimeMs: optional({ type: 'number', minimum: 0 }),
  },
};

export const relocationCodec = defineRecord<RelocationRecord>({ name: 'relocation', schema: relocationSchema });
