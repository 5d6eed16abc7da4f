import type { Etcd3, Logger, Resources } from '@service-foundry/core';
import { applyCommitted, applyCommittedDelete, type ClusterState } from './cluster-state.js';
import type { Ownership } from './ownership.js';
import { NodeView } from './placement/node-view.js';
import { weightedScorers } from './placement/scores/index.js';
import { type PlannedReplica, planWave } from './plan-wave.js';
import { revalidate } from './revalidate.js';
import type { SchedulerOptions, SchedulerStats } from './scheduler.js';
import {
  type CommitResult,
  commitOpsFor,
  commitPlacements,
  type NodeCommit,
  type ReplicaToCommit,
} from './transactions/commit-placements.js';
import { type LockRequest, type LockResult, lockNodes, lockOpsFor } from './transactions/lock-nodes.js';
import type { Slot, WaitingReplica, WorkList } from './work-list.js';

/** How often one slot is tried in a pass before it waits for the next pass. */
const attemptsPerPass = 3;

const slotKey = (slot: Slot) => `${slot.instance.value.id}/${slot.ordinal}`;

/**
 * Whether no live node has the free cpu, memory and disk a replica of `resources` needs,
 * whatever else rules nodes out: the one reason waiting cannot fix by itself (the
 * controller fails such a provision). No nodes at all is not that: agents may be starting.
 */
function noNodeHasRoom(view: NodeView, resources: Resources): boolean {
  if (view.candidates.length === 0) return false;
  return view.candidates.every(({ node: { capacity }, allocated }) => {
    return (
      allocated.cpuMillis + resources.cpuMillis > capacity.cpuMillis ||
      allocated.memoryMb + resources.memoryMb > capacity.memoryMb ||
      allocated.diskMb + resources.diskMb > capacity.diskMb
    );
  });
}

/** One chunk of nodes on its way through lock → re-check → commit. */
interface Chunk {
  nodes: string[];
  byNode: Map<string, PlannedReplica[]>;
  instances: string[];
}

export interface PipelineHooks {
  /** Called after the lock request succeeded for at least one node (fault injection). */
  afterLock(locked: number): void;
  /** A request's outcome is unknown: these nodes' locks may still be ours. */
  uncertain(error: unknown, nodes: readonly string[]): void;
  /** A replica was committed. */
  placed(replica: ReplicaToCommit): void;
  /** Whether committing `planned` leaves its instance fully placed (its scheduling status can go). */
  completesInstance(planned: PlannedReplica): boolean;
}

/** A slot no live node can take. `noRoom`: no live node has the free resources it needs. */
export interface UnplaceableReplica extends WaitingReplica {
  noRoom?: true;
}

export interface PipelineResult {
  placed: number;
  /** Slots no live node can take, with the reason. */
  unplaceable: UnplaceableReplica[];
  /** The work list after the last commit. */
  work: WorkList;
}

/**
 * One placement pass as a pipeline: while chunks of nodes are being locked and committed
 * (etcd round trips), the next replicas are already being decided. A replica is decided
 * only when no other replica of its instance is in flight, and decisions count the
 * in-flight ones as placed, so nothing decided in parallel depends on another's commit:
 * that is what allows many nodes' transactions in one request.
 */
export class PlacementPipeline {
  readonly #attempts = new Map<string, number>();
  readonly #unplaceable = new Map<string, UnplaceableReplica>();
  readonly #inFlight = new Set<string>();
  readonly #assumed = new Set<Chunk>();
  readonly #queue: Chunk[] = [];
  readonly #running = new Set<Promise<void>>();
  /** Slots committed by this pass (the work list is not re-read after every commit). */
  readonly #done = new Set<string>();
  #placed = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly ownership: Ownership,
    private readonly options: SchedulerOptions,
    private readonly stats: SchedulerStats,
    private readonly hooks: PipelineHooks,
    private readonly log: Logger,
    private readonly leaseId: string,
    private readonly eventLeaseId: string,
    private readonly stillValid: () => boolean,
    /** The current work list (cheap to call: see WorkTracker). */
    private readonly work: () => WorkList,
  ) {}

  async run(): Promise<PipelineResult> {
    for (;;) {
      // Decide more once the queue is empty and half the requests are back: fewer, larger
      // waves cost less (each one builds the node view) and still keep etcd busy.
      const room = this.#queue.length === 0 && this.#running.size <= this.options.transactionsInFlight / 2;
      if (room && this.stillValid()) {
        const wave = this.#selectWave(this.work().slots);
        if (wave.length > 0) {
          this.#plan(wave);
          this.#startQueued();
          continue;
        }
      }
      this.#startQueued();
      if (this.#running.size === 0) break;
      await Promise.race(this.#running);
    }
    return { placed: this.#placed, unplaceable: [...this.#unplaceable.values()], work: this.work() };
  }

  /**
   * The first untried slot of each instance with nothing in flight, oldest instance first,
   * with at most one move per old node (moves off one node all rewrite that node's ledger,
   * which one request may write only once).
   */
  #selectWave(slots: Slot[][]): Slot[] {
    const wave: Slot[] = [];
    const leaving = new Set<string>();
    for (const instanceSlots of slots) {
      const first = instanceSlots[0];
      if (!first || this.#inFlight.has(first.instance.value.id)) continue;
      const slot = instanceSlots.find((s) => {
        const key = slotKey(s);
        if (this.#done.has(key) || this.#unplaceable.has(key) || (this.#attempts.get(key) ?? 0) >= attemptsPerPass) {
          return false;
        }
        // The work list can lag the watched copy: skip what was placed (or moved) meanwhile.
        const now = this.state.placements.items.get(`${this.state.keys.placements()}${key}`);
        return s.moveFrom ? now?.modRevision === s.moveFrom.modRevision : now === undefined;
      });
      if (!slot) continue;
      const from = slot.moveFrom?.value.node;
      if (from) {
        if (leaving.has(from)) continue;
        leaving.add(from);
      }
      wave.push(slot);
      if (wave.length >= this.options.replicasPerWave) break;
    }
    return wave;
  }

  #plan(wave: Slot[]): void {
    for (const slot of wave) this.#attempts.set(slotKey(slot), (this.#attempts.get(slotKey(slot)) ?? 0) + 1);
    const view = NodeView.fromState(this.state);
    for (const chunk of this.#assumed) {
      for (const [node, planned] of chunk.byNode) {
        const candidate = view.byName.get(node);
        if (candidate) for (const p of planned) view.assume(candidate, p.replica);
      }
    }
    const { index, of } = this.ownership.slice();
    const size = view.candidates.length;
    const plan = planWave(wave, this.state, view, {
      scorers: weightedScorers(this.options.scoreWeights),
      nodesToScore: this.options.nodesToScore,
      requiredLabelsOf: this.options.requiredLabelsOf,
      random: () => (index + Math.random()) / of,
    });
    for (const { slot, reason } of plan.unplaceable) {
      const waiting = { instanceId: slot.instance.value.id, ordinal: slot.ordinal, reason };
      const noRoom = noNodeHasRoom(view, slot.instance.value.resources);
      this.#unplaceable.set(slotKey(slot), noRoom ? { ...waiting, noRoom } : waiting);
    }
    const nodes = [...plan.byNode.keys()];
    for (let i = 0; i < nodes.length; i += this.options.nodesPerTransaction) {
      const chunkNodes = nodes.slice(i, i + this.options.nodesPerTransaction);
      const byNode = new Map(chunkNodes.map((n) => [n, plan.byNode.get(n) ?? []]));
      const instances = [...byNode.values()].flat().map((p) => p.replica.instanceId);
      for (const id of instances) this.#inFlight.add(id);
      const chunk: Chunk = { nodes: chunkNodes, byNode, instances };
      this.#assumed.add(chunk);
      this.#queue.push(chunk);
    }
    this.log.debug({ slots: wave.length, nodes: nodes.length, unplaceable: plan.unplaceable.length, size }, 'wave');
  }

  #startQueued(): void {
    while (this.#running.size < this.options.transactionsInFlight) {
      const chunk = this.#queue.shift();
      if (!chunk) return;
      const run: Promise<void> = this.#commitChunk(chunk)
        .then((placed) => {
          this.#placed += placed;
        })
        .finally(() => {
          for (const id of chunk.instances) this.#inFlight.delete(id);
          this.#assumed.delete(chunk);
          this.#running.delete(run);
        });
      this.#running.add(run);
    }
  }

  /** Lock, re-check and commit one chunk of nodes: two etcd requests. */
  async #commitChunk(chunk: Chunk): Promise<number> {
    const keys = this.state.keys;
    const requests: LockRequest[] = chunk.nodes.map((node) => ({
      node,
      moves: (chunk.byNode.get(node) ?? []).flatMap((p) =>
        p.slot.moveFrom
          ? [{ instanceId: p.replica.instanceId, ordinal: p.replica.ordinal, oldNode: p.slot.moveFrom.value.node }]
          : [],
      ),
      known: {
        record: this.state.nodes.items.get(keys.node(node)),
        control: this.state.nodeControls.items.get(keys.nodeControl(node)),
        fence: this.state.fences.items.get(keys.fence(node)),
      },
    }));
    // etcd's limit applies to each nested transaction minus the outer one's own size.
    const maxOps = this.options.maxTxnOps - chunk.nodes.length - 1;
    const lockable = requests.filter((r) => lockOpsFor(r.moves.length) <= maxOps);
    let locks: LockResult;
    const startedAt = performance.now();
    try {
      this.stats.requests++;
      locks = await lockNodes(this.client, keys, lockable, this.leaseId, this.options.name);
    } catch (error) {
      this.hooks.uncertain(error, chunk.nodes);
      return 0;
    }
    this.stats.busy += locks.busy.length;
    this.hooks.afterLock(locks.locked.length);
    const commits: NodeCommit[] = [];
    for (const locked of locks.locked) {
      // What etcd returned with the lock is as new as the watched copy, or newer.
      if (locked.allocation) applyCommitted(this.state.allocations, locked.allocation);
      const { keep } = revalidate(locked, chunk.byNode.get(locked.node) ?? [], {
        maxOps,
        opsFor: (replicas: readonly ReplicaToCommit[]) =>
          commitOpsFor(
            replicas.map((r) => ({ placementKeys: r.placementRevisions.size, moves: r.move !== undefined })),
          ),
        clearsStatus: (p) => this.hooks.completesInstance(p),
      });
      // A node left with nothing to commit still gets its transaction: it releases the lock.
      commits.push({ locked, replicas: keep });
    }
    if (commits.length === 0) return 0;
    const lockedAt = performance.now();
    let result: CommitResult;
    try {
      this.stats.requests++;
      result = await commitPlacements(this.client, keys, commits, locks.revision, {
        scheduler: this.options.name,
        eventLeaseId: this.eventLeaseId,
      });
    } catch (error) {
      this.hooks.uncertain(
        error,
        commits.map((c) => c.locked.node),
      );
      return 0;
    }
    this.stats.conflicts += result.conflicted.length;
    this.log.debug(
      {
        nodes: chunk.nodes.length,
        busy: locks.busy.length,
        conflicted: result.conflicted.length,
        lockMs: Math.round(lockedAt - startedAt),
        commitMs: Math.round(performance.now() - lockedAt),
      },
      'chunk',
    );
    let placed = 0;
    for (const node of result.committed) {
      applyCommitted(this.state.allocations, node.allocation);
      for (const old of node.oldAllocations) applyCommitted(this.state.allocations, old);
      for (const placement of node.placements) applyCommitted(this.state.placements, placement);
      for (const id of node.clearedStatuses) {
        applyCommittedDelete(this.state.schedulingStatuses, keys.schedulingStatus(id), result.revision);
      }
      for (const r of node.replicas) {
        this.#done.add(`${r.instanceId}/${r.ordinal}`);
        this.hooks.placed(r);
      }
      placed += node.replicas.length;
    }
    this.stats.placed += placed;
    return placed;
  }
}
