import type { LevelOutcome } from './levels.js';

export type FenceHistoryAction = 'fence' | 'unfence';

/**
 * `fenced` / `failed`: the levels ran. `unfenced` / `unfence-failed`: an unfence ran (or
 * released a node no level had powered off). `no-op`: nothing was run and nothing changed
 * (already fenced, another caller's attempt answered, nothing to unfence, refused) —
 * kept so that every manual request is audited.
 */
export type FenceHistoryResult = 'fenced' | 'failed' | 'unfenced' | 'unfence-failed' | 'no-op';

/** One `fence-history/<ms>-<id>` entry: who asked what about which node, and what happened. */
export interface FenceHistoryEntry {
  /** The attempt id, also in `fence/<node>` while it is the attempt of record. */
  id: string;
  node: string;
  action: FenceHistoryAction;
  /** `controller` or the operator's name. */
  by: string;
  /** Why it was asked for. */
  reason: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  result: FenceHistoryResult;
  /** The level that fenced the node (fence), or whose devices were powered on (unfence). */
  level?: number;
  /** What went wrong, or for a no-op what was found; empty when a run succeeded. */
  detail: string;
  /** Whether any fence device was run for this request. */
  ranDevices: boolean;
  /**
   * False when the attempt's final write lost its compare (another caller had taken over a
   * stale claim): `fence/<node>` shows the other attempt's outcome.
   */
  recorded: boolean;
  /** Per level, per device: exit codes, attempts, durations, redacted output. */
  levels: LevelOutcome[];
}
