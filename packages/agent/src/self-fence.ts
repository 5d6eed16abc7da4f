import type { EventLog, Logger } from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { DockerRuntime } from './docker-runtime.js';
import type { StatusWriter } from './status-writer.js';

export interface SelfFenceDeps {
  docker: DockerRuntime;
  applied: AppliedReplicas;
  statuses: StatusWriter;
  events: EventLog;
  log: Logger;
  node: string;
  /** Send time of the last keepalive etcd confirmed (NodeRegistration.lastRenewedAt). */
  lastRenewedAt: () => number;
  leaseTtlMs: number;
  marginMs: number;
  checkIntervalMs: number;
  /** Runs once the lease is back: replicas are reconciled, rule 2 decides about the killed primaries. */
  onLifted: () => void;
}

interface Episode {
  startedAt: number;
  lastRenewedAt: number;
  killed: Map<string, { replica: string; sinceRenewalMs: number }>;
}

/**
 * I3, self-fencing. The lease is valid at least until the send time of the last confirmed
 * keepalive plus the TTL; only after it expires can the controller declare the node dead
 * and promote a replica elsewhere. So when no keepalive was confirmed for TTL − margin,
 * every local container that is (or may be) a primary is killed, before that can happen.
 *
 * - Checked on a timer, not on etcd events: etcd3's `lost` fires about 2×TTL late, and a
 *   partition produces no event at all.
 * - `docker kill` (SIGKILL) rather than `docker stop`: a graceful shutdown keeps accepting
 *   and acknowledging writes until it is done (Postgres' smart/fast shutdown waits for
 *   clients or WAL senders), which could outlive the lease. A killed server loses nothing
 *   it acknowledged: committed data is on disk (fsync/WAL) and the server recovers from it
 *   on its next start; with `localIo: unsafe` the user chose to risk that.
 * - Nothing here talks to etcd: etcd is what cannot be reached. Statuses are queued, the
 *   event is written once the lease is back.
 * - While fenced no primary starts or is promoted (decisions see `selfFenced`).
 *   When the lease is back nothing is restarted here: the next reconcile applies rule 2,
 *   which starts a killed primary again only if `primary/<id>` still names it at its epoch.
 */
export class SelfFence {
  #episode: Episode | undefined;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly deps: SelfFenceDeps) {}

  get active(): boolean {
    return this.#episode !== undefined;
  }

  start(): void {
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick;
  }

  #schedule(): void {
    if (this.#stopped) return;
    // Every interval, and exactly at the fence point when that comes sooner: the interval
    // alone would add up to one interval of delay to the kill.
    const { leaseTtlMs, marginMs, checkIntervalMs } = this.deps;
    const untilFenceMs = this.deps.lastRenewedAt() + leaseTtlMs - marginMs - Date.now() + 1;
    const waitMs = this.#episode ? checkIntervalMs : Math.max(0, Math.min(checkIntervalMs, untilFenceMs));
    this.#timer = setTimeout(() => {
      this.#tick = this.check()
        .catch((error: unknown) => this.deps.log.error({ err: error }, 'self-fence check failed'))
        .finally(() => this.#schedule());
    }, waitMs);
  }

  /** One check: fence, keep fencing, or lift. Exposed so callers can force a check. */
  async check(): Promise<void> {
    const { leaseTtlMs, marginMs, log } = this.deps;
    const lastRenewedAt = this.deps.lastRenewedAt();
    const now = Date.now();
    const leaseAgeMs = now - lastRenewedAt;
    if (leaseAgeMs > leaseTtlMs - marginMs) {
      if (!this.#episode) {
        this.#episode = { startedAt: now, lastRenewedAt, killed: new Map() };
        log.error(
          { lastRenewedAt, leaseAgeMs, leaseTtlMs, marginMs },
          'self-fencing: the node lease was not renewed in time; killing every local primary',
        );
      }
      await this.#killPrimaries(this.#episode);
    } else if (this.#episode) {
      this.#lift(this.#episode, now);
    }
  }

  async #killPrimaries(episode: Episode): Promise<void> {
    const targets = this.deps.applied.all().filter((e) => e.mayBePrimary && !episode.killed.has(e.containerId));
    await Promise.all(targets.map((entry) => this.#kill(episode, entry)));
  }

  async #kill(episode: Episode, entry: AppliedReplica): Promise<void> {
    const { docker, log, statuses } = this.deps;
    const replica = `${entry.ref.instanceId}/${entry.ref.ordinal}`;
    const killRequestedAt = Date.now();
    try {
      await docker.killContainer(entry.containerId);
    } catch (error) {
      log.error({ err: error, replica, container: entry.containerId }, 'self-fencing: kill failed; retrying');
      return;
    }
    // Docker answers once it has processed the exit, which can be a few 100 ms after SIGKILL.
    const killConfirmedAt = Date.now();
    const sinceRenewalMs = killRequestedAt - episode.lastRenewedAt;
    episode.killed.set(entry.containerId, { replica, sinceRenewalMs });
    entry.fencedReason = `self-fenced: killed ${sinceRenewalMs} ms after the last confirmed lease renewal`;
    log.error(
      {
        instanceId: entry.ref.instanceId,
        ordinal: entry.ref.ordinal,
        container: entry.containerId,
        lastRenewedAt: episode.lastRenewedAt,
        killRequestedAt,
        killConfirmedAt,
        sinceRenewalMs,
        leaseTtlMs: this.deps.leaseTtlMs,
      },
      'self-fenced: killed a primary',
    );
    // Queued: etcd is unreachable; the write goes out when it answers again.
    void statuses.set(entry.ref, {
      ...appliedStatusFields(entry),
      state: 'failed',
      containerId: entry.containerId,
      message: entry.fencedReason,
    });
  }

  #lift(episode: Episode, now: number): void {
    const { log, events, node, leaseTtlMs, marginMs } = this.deps;
    this.#episode = undefined;
    const killed = [...episode.killed.values()].map((k) => `${k.replica} (+${k.sinceRenewalMs} ms)`);
    const message =
      `node ${node} fenced itself: no lease renewal confirmed for ${episode.startedAt - episode.lastRenewedAt} ms ` +
      `(TTL ${leaseTtlMs} ms, margin ${marginMs} ms); killed ${killed.length > 0 ? killed.join(', ') : 'no primary'}; ` +
      `lease renewed again after ${now - episode.startedAt} ms`;
    log.warn({ killed: killed.length }, `self-fence lifted: ${message}`);
    void events.record('node-self-fenced', message, { node });
    this.deps.onLifted();
  }
}
