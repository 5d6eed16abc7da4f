import type { FenceState, NodeFenceRecord } from '@service-foundry/core';

/**
 * The state machine of `fence/<node>` (docs/fencing.md has the same table; the tests walk
 * every row). "none" means no record, which reads like `unfenced`.
 *
 * | state \ event        | fence requested                          | a level confirmed off | all levels failed   | unfence requested                          | `on` succeeded | `on` failed      |
 * |----------------------|------------------------------------------|-----------------------|---------------------|--------------------------------------------|----------------|------------------|
 * | none / unfenced      | → fencing (claim by txn); run levels     | –                     | –                   | stays; nothing to run                      | –              | –                |
 * | fencing (live)       | stays; wait for that attempt's outcome   | → fenced (level)      | → failed (reasons)  | refused (conflict)                         | –              | –                |
 * | fencing (stale)      | → fencing (take over by txn); run levels | → fenced (level)      | → failed (reasons)  | → unfenced, no devices run                 | –              | –                |
 * | fenced               | stays; "already fenced", nothing run     | –                     | –                   | stays fenced; run `on` on the fencing level | → unfenced     | stays fenced     |
 * | failed               | → fencing (claim by txn); run levels     | –                     | –                   | → unfenced, no devices run                 | –              | –                |
 *
 * A fencing record is stale once its `deadline` has passed: the runner that claimed it
 * had the whole worst-case run time of every level plus a grace period, so it crashed or
 * lost etcd. A late runner's final write compares the claim's mod revision and loses to
 * whoever took over; its history entry is still written.
 */

/** `fence/<node>` as this package writes it: core's record plus the attempt bookkeeping. */
export interface StoredFenceRecord extends NodeFenceRecord {
  /** One fencing or unfencing attempt; history entries carry the same id. */
  attemptId?: string;
  /** While `fencing`: when others may consider the attempt dead and take it over. */
  deadline?: string;
}

export type FenceDecision =
  /** No fencing is under way: claim the record and run the levels. */
  | { kind: 'start' }
  /** A claim outlived its deadline: claim it anew and run the levels. */
  | { kind: 'take-over'; staleAttemptId: string }
  /** The node is already confirmed fenced; nothing runs. */
  | { kind: 'already-fenced' }
  /** Someone else is running the devices right now: wait for their outcome. */
  | { kind: 'wait'; attemptId: string; untilMs: number };

export type UnfenceDecision =
  /** Run `on` on the devices of the level that fenced the node. */
  | { kind: 'power-on'; level: number }
  /** No known level powered the node off (failed, stale or level-less record): just mark it unfenced. */
  | { kind: 'release' }
  /** Not fenced: nothing to do. */
  | { kind: 'nothing' }
  /** A fencing attempt is running; unfencing now would race it. */
  | { kind: 'refuse'; reason: string };

/** When a `fencing` record becomes stale; a record without a deadline gets `fallbackMs` after its time. */
export function staleAtMs(record: StoredFenceRecord, fallbackMs: number): number {
  const deadline = record.deadline ? Date.parse(record.deadline) : Number.NaN;
  if (Number.isFinite(deadline)) return deadline;
  const at = Date.parse(record.at);
  return (Number.isFinite(at) ? at : 0) + fallbackMs;
}

export function decideFence(
  current: StoredFenceRecord | undefined,
  nowMs: number,
  fallbackStaleMs: number,
): FenceDecision {
  switch (current?.state ?? 'unfenced') {
    case 'unfenced':
    case 'failed':
      return { kind: 'start' };
    case 'fenced':
      return { kind: 'already-fenced' };
    case 'fencing': {
      const record = current as StoredFenceRecord;
      const untilMs = staleAtMs(record, fallbackStaleMs);
      const attemptId = record.attemptId ?? '';
      return nowMs >= untilMs ? { kind: 'take-over', staleAttemptId: attemptId } : { kind: 'wait', attemptId, untilMs };
    }
  }
}

export function decideUnfence(
  current: StoredFenceRecord | undefined,
  nowMs: number,
  fallbackStaleMs: number,
): UnfenceDecision {
  switch (current?.state ?? 'unfenced') {
    case 'unfenced':
      return { kind: 'nothing' };
    case 'failed':
      return { kind: 'release' };
    case 'fenced':
      return current?.level !== undefined ? { kind: 'power-on', level: current.level } : { kind: 'release' };
    case 'fencing': {
      const record = current as StoredFenceRecord;
      if (nowMs >= staleAtMs(record, fallbackStaleMs)) return { kind: 'release' };
      return {
        kind: 'refuse',
        reason: `node ${record.node} is being fenced by ${record.by} since ${record.at}; unfence when that attempt ends`,
      };
    }
  }
}

/** The state after running the levels. */
export function stateAfterFencing(ok: boolean): FenceState {
  return ok ? 'fenced' : 'failed';
}

/** The state after running `on`: a node stays fenced until its power is back. */
export function stateAfterUnfencing(ok: boolean): FenceState {
  return ok ? 'unfenced' : 'fenced';
}
