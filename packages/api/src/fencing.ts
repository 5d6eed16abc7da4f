import type { FenceDevicesRecord, FenceHistoryEntry, FenceResult, UnfenceResult } from '@service-foundry/fencing';

/** `POST /sf/v1/nodes/:node/fence`: what fencing came to, without the stored fence record. */
export type FenceReply = Omit<FenceResult, 'record' | 'level'> & {
  /** The level that fenced the node; null when none did. */
  level: number | null;
};

/** `POST /sf/v1/nodes/:node/unfence`. */
export type UnfenceReply = UnfenceResult;

/** `GET /sf/v1/fencing-history`: newest first. */
export type FenceHistoryView = FenceHistoryEntry;

/** `GET|PUT /sf/v1/nodes/:node/fence-devices`: the stored levels, secrets answered as the redaction marker. */
export type FenceDevicesView = FenceDevicesRecord;
