import type { Etcd3, EventLog, InstanceRecord, Logger } from '@service-foundry/core';
import { ClusterChores } from './cluster-chores.js';
import type { ClusterState } from './cluster-state.js';
import { Ownership, type SchedulerMode } from './ownership.js';
import { PlacementPipeline } from './pipeline.js';
import type { ScoreWeights } from './placement/scores/index.js';
import { PlacementEventLease } from './placement-events.js';
import type { PlannedReplica } from './plan-wave.js';
import { SchedulerSession } from './scheduler-session.js';
import { SchedulingStatusWriter } from './scheduling-status.js';
import { releaseNodeLocks } from './transactions/lock-nodes.js';
import { WorkTracker } from './work-tracker.js';

export interface SchedulerOptions {
  /** Recorded on placements, locks, events and the membership key. */
  name: string;
  mode: SchedulerMode;
  /** TTL of the session lease behind membership and node locks. */
  lockTtlSeconds: number;
  nodesToScore: number;
  nodesPerTransaction: number;
  transactionsInFlight: number;
  replicasPerWave: number;
  /** etcd's `--max-txn-ops` (128 unless the cluster raised it). */
  maxTxnOps: number;
  scoreWeights: Readonly<ScoreWeights>;
  /** A full pass at least this often, even when nothing seems to have changed. */
  intervalMs: number;
  /** Test-only: stop this process (SIGSTOP) once, right after taking node locks. */
  stopAfterLockAcquire: boolean;
  requiredLabelsOf: (instance: InstanceRecord) => Readonly<Record<string, string>>;
}

export interface SchedulerPassResult {
  placed: number;
  pending: number;
}

/** Counters for logs and the benchmark. */
export interface SchedulerStats {
  placed: number;
  moved: number;
  /** etcd requests made by placement (lock, commit, lock cleanup). */
  requests: number;
  /** Node transactions whose comparisons failed. */
  conflicts: number;
  /** Node locks found held by another scheduler. */
  busy: number;
}

/**
 * Places unplaced replicas and moves replicas off fenced nodes: filter → score → reserve
 * (under the node's etcd mutex, in one transaction per node) → bind (the assignment the
 * node's agent watches). See docs/scheduler.md.
 *
 * A pass is a pipeline (pipeline.ts): decide replicas on the watched state, lock a chunk
 * of chosen nodes in one request (reading each node's ledger under its lock), re-check,
 * and commit every node's placements in one more request — each node a nested transaction
 * that succeeds or fails alone — while the next replicas are being decided.
 */
export class Scheduler {
  readonly #session: SchedulerSession;
  readonly #ownership: Ownership;
  readonly #eventLease: PlacementEventLease;
  readonly #statuses: SchedulingStatusWriter;
  readonly #chores: ClusterChores;
  /** Locks whose release is uncertain (a request failed): deleted on the next pass. */
  readonly #staleLocks = new Set<string>();
  #stopInjected = false;
  readonly #work: WorkTracker;
  #fullPassAt = 0;
  /** Set when a pass found nothing to place: the inputs it saw, and when. */
  #quiet: { inputs: string; at: number } | undefined;
  readonly stats: SchedulerStats = { placed: 0, moved: 0, requests: 0, conflicts: 0, busy: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly options: SchedulerOptions,
    events: EventLog,
    private readonly log: Logger,
  ) {
    const record = { name: options.name, mode: options.mode, startedAt: new Date().toISOString() };
    this.#session = new SchedulerSession(client, state.keys, record, options.lockTtlSeconds, log);
    this.#ownership = new Ownership(state.schedulers, state.keys, options.name, options.mode);
    this.#eventLease = new PlacementEventLease(client);
    this.#statuses = new SchedulingStatusWriter(client, state, events, log);
    this.#chores = new ClusterChores(client, state, events, log);
    this.#work = new WorkTracker(state, this.#ownership);
  }

  async close(): Promise<void> {
    await this.#session.close();
  }

  /**
   * Whether this scheduler leads: the eldest registered member. The leader alone runs
   * the controller and the fence checks, so a standby (or a restarted leader, now the
   * youngest) decides nothing twice; it takes over when the leader's session lease expires.
   */
  leads(): boolean {
    return this.#ownership.isEldest();
  }

  async pass(): Promise<SchedulerPassResult> {
    const leaseId = await this.#session.ensure(this.state.schedulers);
    if (leaseId === undefined) return { placed: 0, pending: 0 };
    if (this.#staleLocks.size) await this.#releaseStaleLocks(leaseId);
    // Until the watch shows our membership we own nothing; the put's event pokes us again.
    if (!this.#ownership.registered()) return { placed: 0, pending: 0 };
    if (this.#ownership.isEldest()) await this.#chores.run();
    // A standby owns nothing. A scheduler with nothing left to do ignores the echoes of
    // its own commits (placements, ledgers): only these inputs can create work, besides
    // a full pass every intervalMs.
    const inputs = this.#workInputs();
    if (this.#ownership.ownsNothing()) return { placed: 0, pending: 0 };
    if (this.#quiet?.inputs === inputs && Date.now() - this.#quiet.at < this.options.intervalMs) {
      return { placed: 0, pending: 0 };
    }
    if (Date.now() - this.#fullPassAt >= this.options.intervalMs) {
      this.#work.invalidate();
      this.#fullPassAt = Date.now();
    }
    const eventLeaseId = await this.#eventLease.id();
    const conflictsBefore = this.stats.conflicts;
    const pipeline = new PlacementPipeline(
      this.client,
      this.state,
      this.#ownership,
      this.options,
      this.stats,
      {
        afterLock: (locked) => this.#injectStop(locked),
        uncertain: (error, nodes) => this.#requestFailed(error, nodes),
        placed: (replica) => {
          this.#statuses.forget(replica.instanceId, replica.ordinal);
          if (replica.move) this.stats.moved++;
        },
        completesInstance: (planned) => this.#completesInstance(planned),
      },
      this.log,
      leaseId,
      eventLeaseId,
      () => this.#session.leaseId === leaseId,
      () => this.#work.collect(),
    );
    const { placed, unplaceable, work } = await pipeline.run();
    await this.#statuses.sync(work.owned, [...work.waiting, ...unplaceable]);
    this.#quiet = work.slots.length === 0 ? { inputs, at: Date.now() } : undefined;
    const pending = work.slots.reduce((n, s) => n + s.length, 0) + work.waiting.length;
    const conflicts = this.stats.conflicts - conflictsBefore;
    if (placed > 0 || conflicts > 0) this.log.info({ placed, conflicts, pending, stats: this.stats }, 'placement pass');
    return { placed, pending };
  }

  #workInputs(): string {
    const s = this.state;
    return [s.instances, s.nodes, s.fences, s.nodeControls, s.schedulers].map((m) => m.revision).join(':');
  }

  /** Whether committing `planned` leaves its instance with every replica placed on a live node. */
  #completesInstance(planned: PlannedReplica): boolean {
    const keys = this.state.keys;
    const instance = planned.slot.instance.value;
    if (!this.state.schedulingStatuses.items.has(keys.schedulingStatus(instance.id))) return false;
    for (let ordinal = 0; ordinal < instance.replicas; ordinal++) {
      if (ordinal === planned.slot.ordinal) continue;
      const placement = this.state.placements.items.get(keys.placement(instance.id, ordinal));
      if (!placement || !this.state.nodes.items.has(keys.node(placement.value.node))) return false;
    }
    return true;
  }

  #requestFailed(error: unknown, nodes: readonly string[]): void {
    const message = (error as Error).message ?? String(error);
    // The request may have committed before failing to answer: release what might be ours.
    for (const node of nodes) this.#staleLocks.add(node);
    if (/lease not found/i.test(message)) this.#session.markLost(message);
    this.log.warn({ err: error, nodes: nodes.length }, 'placement request failed; will retry');
  }

  async #releaseStaleLocks(leaseId: string): Promise<void> {
    const nodes = [...this.#staleLocks];
    this.#staleLocks.clear();
    try {
      this.stats.requests++;
      await releaseNodeLocks(this.client, this.state.keys, nodes, leaseId);
    } catch (error) {
      for (const node of nodes) this.#staleLocks.add(node);
      throw error;
    }
  }

  /** Fault injection for tests: the paused-lock-holder case, at the worst moment. */
  #injectStop(locked: number): void {
    if (!this.options.stopAfterLockAcquire || this.#stopInjected || locked === 0) return;
    this.#stopInjected = true;
    this.log.warn({ locked }, 'fault injection: stopping this process while it holds node locks');
    process.kill(process.pid, 'SIGSTOP');
  }
}
