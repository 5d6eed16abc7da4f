import { InvalidInputError, isKeySegment } from '@service-foundry/core';
import type { StoredFenceRecord } from './fence-state-machine.js';
import type { FenceHistoryEntry } from './history.js';

export interface FenceRequest {
  /** `controller`, or the operator's name for manual fencing. */
  by: string;
  /** Why, for the record and the history (e.g. "lease of node-2 expired"). */
  reason: string;
}

export interface UnfenceRequest extends FenceRequest {
  /**
   * Run `on` on the devices of the level that fenced the node. False only marks the node
   * unfenced, for a node that was repaired and powered on by hand. @default true
   */
  powerOn?: boolean;
}

/** What fencing a node came to. Only `state: 'fenced'` allows a `required` failover. */
export interface FenceResult {
  node: string;
  state: 'fenced' | 'failed';
  /** The level that fenced the node. */
  level?: number;
  /** Why fencing failed; empty when fenced. */
  reason: string;
  /** False when the node was already fenced or another caller's attempt answered. */
  ranDevices: boolean;
  /** `fence/<node>` as written or found. */
  record: StoredFenceRecord;
  history: FenceHistoryEntry;
}

export interface UnfenceResult {
  node: string;
  /** `fenced` when powering on failed: the node stays fenced. */
  state: 'unfenced' | 'fenced';
  ok: boolean;
  reason: string;
  ranDevices: boolean;
  history: FenceHistoryEntry;
}

/** True when `text` holds a C0 control character or DEL (newlines and tabs too, unless allowed). */
function hasControlCharacters(text: string, allowWhitespace: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (allowWhitespace && (code === 9 || code === 10)) continue;
    if (code < 32 || code === 127) return true;
  }
  return false;
}

export function checkRequest(node: string, request: FenceRequest): void {
  const problems: string[] = [];
  if (!isKeySegment(node)) problems.push(`node ${JSON.stringify(node.slice(0, 200))} is not a valid node name`);
  if (request.by.length === 0 || request.by.length > 128 || hasControlCharacters(request.by, false)) {
    problems.push('by must be 1 to 128 printable characters');
  }
  if (request.reason.length > 1000 || hasControlCharacters(request.reason, true)) {
    problems.push('reason must be at most 1000 characters without control characters');
  }
  if (problems.length > 0) throw new InvalidInputError('invalid fencing request', problems);
}
