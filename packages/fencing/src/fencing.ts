import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ConflictError,
  createLogger,
  type Etcd3,
  EventLog,
  type Keyspace,
  type Logger,
  type SecretBox,
  type Versioned,
} from '@service-foundry/core';
import type { FenceDevicesRecord, FenceLevelConfig } from './device-config.js';
import type { DeviceRunContext } from './device-runner.js';
import { FenceAgents } from './fence-agents.js';
import {
  checkRequest,
  type FenceRequest,
  type FenceResult,
  type UnfenceRequest,
  type UnfenceResult,
} from './fence-request.js';
import {
  decideFence,
  decideUnfence,
  type StoredFenceRecord,
  stateAfterFencing,
  stateAfterUnfencing,
} from './fence-state-machine.js';
import { FenceStore } from './fence-store.js';
import type { FenceHistoryEntry, FenceHistoryResult } from './history.js';
import { type LevelsResult, runFenceLevels, runUnfenceLevel } from './levels.js';
import { compileFencingOptions, type FencingOptions } from './options.js';
import { worstCaseMs } from './worst-case.js';

export interface FencingDeps {
  /** Opens the fence devices' credentials, sealed in etcd. */
  secrets: SecretBox;
  /** @default a pino logger named `fencing` */
  log?: Logger;
}

/** Enough rounds for any real contention; more means something rewrites the record in a loop. */
const maxRounds = 50;

/** Pause between tries of writing a fencing outcome etcd did not take. */
const outcomeRetryMs = 250;

/**
 * Fences and unfences nodes: runs their fence levels and keeps `fence/<node>` and the
 * fence history in etcd. The controller's failover and the operator API (manual fencing)
 * both go through it, so both are serialised by the same transactions and audited alike.
 */
export class Fencing {
  readonly store: FenceStore;
  /** The agent allow-list and option checks, shared by the store (writes) and the runner. */
  readonly agents: FenceAgents;
  readonly options: Readonly<FencingOptions>;
  readonly #log: Logger;
  readonly #events: EventLog | undefined;

  constructor(client: Etcd3, keys: Keyspace, options: Partial<FencingOptions>, deps: FencingDeps) {
    this.options = compileFencingOptions(options);
    this.agents = new FenceAgents(this.options);
    this.store = new FenceStore(client, keys, this.agents, deps.secrets);
    this.#log = deps.log ?? createLogger({ name: 'fencing' });
    this.#events = this.options.recordEvents ? new EventLog(client, keys, 'fencing') : undefined;
  }

  /**
   * Fences `node`: claims `fence/<node>` (state `fencing`) in a transaction, runs the
   * levels in order until one confirms the node off, writes `fenced` (with the level) or
   * `failed` (with every device's reason) and a history entry. If another caller is
   * already fencing the node, waits for that attempt and returns its outcome without
   * running anything; a node already fenced is answered at once.
   */
  async fence(node: string, request: FenceRequest): Promise<FenceResult> {
    checkRequest(node, request);
    const started = Date.now();
    for (let round = 0; round < maxRounds; round++) {
      const current = await this.store.record(node);
      const decision = decideFence(current?.value, Date.now(), this.options.staleGraceMs);
      if (decision.kind === 'already-fenced' && current) {
        const { by, at, level } = current.value;
        const detail = `already fenced${level === undefined ? '' : ` at level ${level}`} by ${by} at ${at}`;
        return this.#answered(node, request, started, current.value, detail);
      }
      if (decision.kind === 'wait') {
        const settled = await this.#waitForAttempt(node, decision.attemptId, decision.untilMs);
        if (settled) {
          const detail = `answered by attempt ${settled.attemptId} of ${settled.by}: ${settled.state}`;
          return this.#answered(node, request, started, settled, detail);
        }
        continue;
      }
      if (decision.kind === 'take-over') {
        this.#log.warn({ node, staleAttempt: decision.staleAttemptId }, 'taking over a stale fencing attempt');
      }
      const result = await this.#runFencing(node, request, current, started);
      if (result) return result;
    }
    throw new ConflictError(`fence/${node} kept changing; gave up after ${maxRounds} rounds`);
  }

  /**
   * Unfences `node`. A fenced node gets `on` on the devices of the level that fenced it
   * (from the current device config) and becomes `unfenced` once they all succeed; if one
   * fails it stays `fenced`. A `failed` (or abandoned `fencing`) record is released
   * without running anything: the operator declares the node clean. Refused with a
   * ConflictError while a fencing attempt is running.
   */
  async unfence(node: string, request: UnfenceRequest): Promise<UnfenceResult> {
    checkRequest(node, request);
    const started = Date.now();
    for (let round = 0; round < maxRounds; round++) {
      const current = await this.store.record(node);
      const decision = decideUnfence(current?.value, Date.now(), this.options.staleGraceMs);
      if (decision.kind === 'nothing') {
        const history = this.#history(node, 'unfence', request, started, 'no-op', 'not fenced', undefined);
        await this.store.appendHistory(history);
        return { node, state: 'unfenced', ok: true, reason: '', ranDevices: false, history };
      }
      if (decision.kind === 'refuse') {
        const history = this.#history(node, 'unfence', request, started, 'no-op', decision.reason, undefined);
        await this.store.appendHistory(history);
        throw new ConflictError(decision.reason);
      }
      let run: LevelsResult | undefined;
      let level: number | undefined;
      if (decision.kind === 'power-on' && request.powerOn !== false) {
        level = decision.level;
        run = await this.#powerOn(node, decision.level);
      }
      const ok = run?.ok ?? true;
      const detail = run ? run.reason : `released without running devices (was ${current?.value.state})`;
      const history = this.#history(
        node,
        'unfence',
        request,
        started,
        ok ? 'unfenced' : 'unfence-failed',
        ok ? '' : detail,
        run,
      );
      if (level !== undefined) history.level = level;
      if (!ok) {
        await this.store.appendHistory(history);
        await this.#event('node-unfence-failed', `unfencing ${node} failed, it stays fenced: ${detail}`, node);
        return { node, state: stateAfterUnfencing(false) as 'fenced', ok, reason: detail, ranDevices: true, history };
      }
      const next: StoredFenceRecord = {
        node,
        state: stateAfterUnfencing(true),
        reason: request.reason,
        by: request.by,
        at: new Date().toISOString(),
        attemptId: history.id,
      };
      if (run) {
        // The devices ran: the history is written whether or not the record still was ours.
        const { written } = await this.store.compareAndPut(node, current, next, history);
        if (!written) {
          const reason = `fence/${node} changed while its devices were powered on; left as the other request wrote it`;
          this.#log.warn({ node }, reason);
          const now = (await this.store.record(node))?.value.state;
          const state = now === 'fenced' || now === 'fencing' ? 'fenced' : 'unfenced';
          return { node, state, ok: state === 'unfenced', reason, ranDevices: true, history };
        }
      } else {
        const { written } = await this.store.compareAndPut(node, current, next);
        if (!written) continue;
        await this.store.appendHistory(history);
      }
      this.#log.info({ node, by: request.by, ranDevices: run !== undefined }, 'node unfenced');
      await this.#event('node-unfenced', `${node} unfenced by ${request.by}`, node);
      return { node, state: 'unfenced', ok: true, reason: '', ranDevices: run !== undefined, history };
    }
    throw new ConflictError(`fence/${node} kept changing; gave up after ${maxRounds} rounds`);
  }

  /** Claims the record and runs the levels; undefined when the claim lost its transaction. */
  async #runFencing(
    node: string,
    request: FenceRequest,
    current: Versioned<StoredFenceRecord> | undefined,
    started: number,
  ): Promise<FenceResult | undefined> {
    let devices: Readonly<FenceDevicesRecord> | undefined;
    let configProblem = '';
    try {
      devices = await this.store.devices(node);
      if (!devices) configProblem = `no fence devices configured for node ${node}`;
    } catch (error) {
      configProblem = (error as Error).message;
    }
    const levels = devices?.levels ?? [];
    const attemptId = randomBytes(6).toString('hex');
    const claimedAt = Date.now();
    const claim: StoredFenceRecord = {
      node,
      state: 'fencing',
      reason: request.reason,
      by: request.by,
      at: new Date(claimedAt).toISOString(),
      attemptId,
      deadline: new Date(
        claimedAt + worstCaseMs(levels, this.options.retryDelayMs) + this.options.staleGraceMs,
      ).toISOString(),
    };
    const claimed = await this.store.compareAndPut(node, current, claim);
    if (!claimed.written) return undefined;
    this.#log.info({ node, by: request.by, reason: request.reason, attemptId }, 'fencing node');
    await this.#event('node-fencing', `fencing ${node} (by ${request.by}: ${request.reason})`, node);

    const run = configProblem
      ? { ok: false, levels: [], reason: configProblem, durationMs: 0 }
      : await runFenceLevels(levels, this.#runContext(node));
    const state = stateAfterFencing(run.ok) as 'fenced' | 'failed';
    const record: StoredFenceRecord = {
      node,
      state,
      reason: run.ok ? request.reason : run.reason,
      by: request.by,
      at: new Date().toISOString(),
      attemptId,
      ...(run.level === undefined ? {} : { level: run.level }),
    };
    const history = this.#history(node, 'fence', request, started, state, run.reason, run);
    history.id = attemptId;
    if (run.level !== undefined) history.level = run.level;
    const claimVersion = { key: '', value: claim, modRevision: claimed.revision, createRevision: '', lease: '0' };
    const final = await this.#writeOutcome(node, claimVersion, record, history, Date.parse(claim.deadline ?? ''));
    if (!final.written) {
      // Our claim was taken over as stale: the record is the other attempt's now.
      this.#log.warn({ node, attemptId }, 'fencing attempt finished after being taken over; record left alone');
    }
    if (run.ok) {
      this.#log.info({ node, level: run.level, ms: run.durationMs }, 'node fenced');
      await this.#event('node-fenced', `${node} fenced at level ${run.level} (${run.durationMs} ms)`, node);
    } else {
      this.#log.error({ node, reason: run.reason }, 'fencing failed');
      await this.#event('node-fence-failed', `fencing ${node} failed: ${run.reason}`, node);
    }
    const result: FenceResult = { node, state, reason: run.reason, ranDevices: !configProblem, record, history };
    if (run.level !== undefined) result.level = run.level;
    return result;
  }

  async #powerOn(node: string, level: number): Promise<LevelsResult> {
    let config: Readonly<FenceLevelConfig> | undefined;
    try {
      config = (await this.store.devices(node))?.levels[level - 1];
    } catch (error) {
      return { ok: false, levels: [], reason: (error as Error).message, durationMs: 0 };
    }
    if (!config) {
      const reason = `level ${level}, which fenced ${node}, is no longer configured; fix the devices or unfence without powering on`;
      return { ok: false, levels: [], reason, durationMs: 0 };
    }
    return runUnfenceLevel(level, config, this.#runContext(node));
  }

  /** Polls until attempt `attemptId` ends (its record) or goes stale / is replaced (undefined). */
  async #waitForAttempt(node: string, attemptId: string, untilMs: number): Promise<StoredFenceRecord | undefined> {
    for (;;) {
      await delay(Math.max(1, Math.min(this.options.waitPollMs, untilMs - Date.now())));
      const current = (await this.store.record(node))?.value;
      if (!current || current.attemptId !== attemptId) return undefined;
      if (current.state !== 'fencing')
        return current.state === 'fenced' || current.state === 'failed' ? current : undefined;
      if (Date.now() >= untilMs) return undefined;
    }
  }

  async #answered(
    node: string,
    request: FenceRequest,
    started: number,
    record: StoredFenceRecord,
    detail: string,
  ): Promise<FenceResult> {
    const history = this.#history(node, 'fence', request, started, 'no-op', detail, undefined);
    if (record.level !== undefined) history.level = record.level;
    await this.store.appendHistory(history);
    const state = record.state === 'fenced' ? 'fenced' : 'failed';
    const result: FenceResult = {
      node,
      state,
      reason: state === 'fenced' ? '' : record.reason,
      ranDevices: false,
      record,
      history,
    };
    if (record.level !== undefined) result.level = record.level;
    return result;
  }

  #history(
    node: string,
    action: 'fence' | 'unfence',
    request: FenceRequest,
    started: number,
    result: FenceHistoryResult,
    detail: string,
    run: LevelsResult | undefined,
  ): FenceHistoryEntry {
    const finished = Date.now();
    return {
      id: randomBytes(6).toString('hex'),
      node,
      action,
      by: request.by,
      reason: request.reason,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      result,
      detail,
      ranDevices: (run?.levels.length ?? 0) > 0,
      recorded: true,
      levels: run?.levels ?? [],
    };
  }

  #runContext(node: string): DeviceRunContext {
    return {
      node,
      agents: this.agents,
      maxOutputBytes: this.options.maxOutputBytes,
      retryDelayMs: this.options.retryDelayMs,
      log: this.#log,
    };
  }

  /**
   * Writes an attempt's outcome over its claim. The devices have already run, so a write
   * etcd could not take (no leader while a member's node was just powered off, a dropped
   * connection) is tried again until the claim's deadline: lost, the node would look
   * `fencing` until then, and every other fence request would wait for it.
   */
  async #writeOutcome(
    node: string,
    claim: Versioned<StoredFenceRecord>,
    record: StoredFenceRecord,
    history: FenceHistoryEntry,
    deadlineMs: number,
  ): Promise<{ written: boolean }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.store.compareAndPut(node, claim, record, history);
        if (result.written || attempt === 1) return result;
        // A retry lost its compare: an earlier try may have committed without an answer.
        const now = await this.store.record(node);
        return { written: now?.value.attemptId === record.attemptId && now?.value.state === record.state };
      } catch (error) {
        if (!(Date.now() + outcomeRetryMs < deadlineMs)) throw error;
        this.#log.warn({ err: error, node, attempt }, 'writing the fencing outcome failed; trying again');
        await delay(outcomeRetryMs);
      }
    }
  }

  async #event(kind: string, message: string, node: string): Promise<void> {
    await this.#events?.record(kind, message, { node });
  }
}

/** Fences `node` with default options; see {@link Fencing.fence}. */
export function fenceNode(
  client: Etcd3,
  keys: Keyspace,
  node: string,
  request: FenceRequest,
  options: Partial<FencingOptions>,
  deps: FencingDeps,
): Promise<FenceResult> {
  return new Fencing(client, keys, options, deps).fence(node, request);
}

/** Unfences `node` with default options; see {@link Fencing.unfence}. */
export function unfenceNode(
  client: Etcd3,
  keys: Keyspace,
  node: string,
  request: UnfenceRequest,
  options: Partial<FencingOptions>,
  deps: FencingDeps,
): Promise<UnfenceResult> {
  return new Fencing(client, keys, options, deps).unfence(node, request);
}
