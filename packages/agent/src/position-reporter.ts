import type { Catalog, Logger } from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { ReplicaRef } from './container-spec.js';
import type { ReplicationCommands } from './replication-commands.js';
import type { StatusWriter } from './status-writer.js';

/** Which replicas' positions decide something now (a switchover waiting for them). */
export interface PositionUrgency {
  urgent(instanceId: string, ordinal: number): boolean;
  anyUrgent(): boolean;
}

/** Which replicas' positions may decide something soon (a failover that may be coming). */
export interface PositionPromptness {
  prompt(instanceId: string, ordinal: number): boolean;
  anyPrompt(): boolean;
}

export interface PositionReporterDeps {
  catalog: Catalog;
  applied: AppliedReplicas;
  statuses: StatusWriter;
  commands: ReplicationCommands;
  log: Logger;
  intervalMs: number;
  /** An unchanged position and role are written again this often (positionAt stays fresh). */
  refreshMs: number;
  /** While `urgency` names a replica: how often it is read; every reading is written. */
  urgentIntervalMs: number;
  urgency?: PositionUrgency;
  /** While `promptness` names a replica: how often it is read; every reading is written. */
  promptIntervalMs: number;
  promptness?: PositionPromptness;
}

/** Readings of one urgent replica that may overlap: a new one starts every urgent interval. */
const urgentReadingsInFlight = 2;

/** A reading at least this long is logged: a failover may be waiting for it. */
const slowReadingMs = 1000;

/**
 * Rule 5: every `intervalMs`, asks each running replicated container for its replication
 * position (its role every `refreshMs`), and writes them to its status when either
 * changed, or every `refreshMs`.
 * The controller picks the most advanced replica from these. A replica busy with a
 * replication command is skipped; its readings never overlap.
 *
 * A replica whose position decides a switchover (`urgency`) is read every
 * `urgentIntervalMs` instead, readings overlapping (one takes longer than the interval),
 * and every reading is written: the controller promotes on the first one taken after the
 * old primary stopped, and an unchanged position would otherwise wait for `refreshMs`.
 * A replica whose position may decide a failover soon (`promptness`: its primary's node
 * lost its lease) is read every `promptIntervalMs`, and every reading is written too.
 * `positionAt` is when the reading began, never later: a reading that began before a stop
 * must not pass for one taken after it; a reading that ends after a newer one is dropped.
 */
export class PositionReporter {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #readings = new Set<Promise<void>>();
  readonly #inFlight = new WeakMap<AppliedReplica, number>();
  readonly #readAt = new WeakMap<AppliedReplica, number>();
  readonly #roleReadAt = new WeakMap<AppliedReplica, number>();

  constructor(private readonly deps: PositionReporterDeps) {}

  start(): void {
    this.#schedule(this.deps.intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.all(this.#readings);
  }

  /** Reads now rather than at the next tick (a switchover began waiting for positions). */
  poke(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#run();
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.#run(), delayMs);
  }

  #run(): void {
    const { applied, urgency, urgentIntervalMs, promptness, promptIntervalMs, intervalMs, log } = this.deps;
    const now = Date.now();
    for (const entry of applied.all()) {
      const inFlight = this.#inFlight.get(entry) ?? 0;
      const pace = this.#prompt(entry.ref) ? promptIntervalMs : intervalMs;
      const due = this.#urgent(entry.ref)
        ? inFlight < urgentReadingsInFlight
        : // A reading begins a few ms after its tick: without slack it would wait a whole interval more.
          inFlight === 0 && now - (this.#readAt.get(entry) ?? 0) >= pace - 10;
      if (!due) continue;
      this.#inFlight.set(entry, inFlight + 1);
      const reading: Promise<void> = this.#observe(entry)
        .catch((error: unknown) => log.warn({ err: error }, 'position reading failed'))
        .finally(() => {
          this.#inFlight.set(entry, (this.#inFlight.get(entry) ?? 1) - 1);
          this.#readings.delete(reading);
        });
      this.#readings.add(reading);
    }
    this.#schedule(urgency?.anyUrgent() ? urgentIntervalMs : promptness?.anyPrompt() ? promptIntervalMs : intervalMs);
  }

  #urgent(ref: ReplicaRef): boolean {
    return this.deps.urgency?.urgent(ref.instanceId, ref.ordinal) ?? false;
  }

  #prompt(ref: ReplicaRef): boolean {
    return this.deps.promptness?.prompt(ref.instanceId, ref.ordinal) ?? false;
  }

  async #observe(entry: AppliedReplica): Promise<void> {
    const { statuses, commands, catalog, applied, log } = this.deps;
    if (entry.busy > 0) return;
    const status = statuses.current(entry.ref);
    if (status?.containerId !== entry.containerId || status.state !== 'running') return;
    const recipe = catalog.byServiceName(entry.serviceName)?.replication;
    if (!recipe) return;
    const readAt = Date.now();
    this.#readAt.set(entry, readAt);
    // An urgent or prompt reading is written even unchanged.
    const pressing = this.#urgent(entry.ref) || this.#prompt(entry.ref);
    // The role is asked at the refresh pace only, and never by a pressing reading: nothing
    // but this agent's own commands changes it (the replica is busy then, and the command
    // records the new role); the regular question is a safety net.
    const knownRole =
      entry.role !== undefined && (pressing || readAt - (this.#roleReadAt.get(entry) ?? 0) < this.deps.refreshMs)
        ? entry.role
        : undefined;
    let role: AppliedReplica['role'];
    let position: string;
    try {
      [role, position] = await Promise.all([
        knownRole ?? commands.role(entry.containerId, recipe),
        commands.position(entry.containerId, recipe),
      ]);
      if (knownRole === undefined) this.#roleReadAt.set(entry, readAt);
    } catch (error) {
      log.debug({ err: error, instanceId: entry.ref.instanceId, ordinal: entry.ref.ordinal }, 'position probe failed');
      return;
    }
    const tookMs = Date.now() - readAt;
    if (tookMs >= slowReadingMs) {
      log.warn({ instanceId: entry.ref.instanceId, ordinal: entry.ref.ordinal, tookMs }, 'slow position reading');
    }
    // The reconciler may have started a command or replaced the container meanwhile; an
    // overlapping reading that began later may have been written already.
    if (entry.busy > 0 || applied.of(entry.ref, entry.containerId) !== entry) return;
    if (entry.positionAt !== undefined && Date.parse(entry.positionAt) >= readAt) return;
    const changed = role !== entry.role || position !== entry.position;
    const refreshDue = Date.now() - (entry.observedWrittenAt ?? 0) >= this.deps.refreshMs;
    if (!changed && !refreshDue && !pressing) return;
    entry.role = role;
    if (role === 'primary') entry.mayBePrimary = true;
    entry.position = position;
    entry.positionAt = new Date(readAt).toISOString();
    entry.observedWrittenAt = Date.now();
    await statuses.observe(entry.ref, entry.containerId, appliedStatusFields(entry));
  }
}
