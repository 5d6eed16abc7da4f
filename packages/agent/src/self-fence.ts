import type { EventLog, Logger } from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { DockerRuntime } from './docker-runtime.js';
import { keepCovered } from './failsafe-rule.js';
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
  /**
   * The failsafe (failsafe-rule.ts P3): until when the local primary of an instance is
   * covered by its replicas' promises. @default never covered (every primary is killed)
   */
  coveredUntil?: (instanceId: string) => number;
}

interface Episode {
  startedAt: number;
  lastRenewedAt: number;
  killed: Map<string, { replica: string; sinceRenewalMs: number; why: string }>;
  /** Primaries the failsafe kept alive (container → replica, and whether it had no other replica): said once each. */
  covered: Map<string, { replica: string; alone: boolean }>;
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
 * - The failsafe (failsafe-rule.ts): a primary covered by its replicas' promises is kept,
 *   and killed the moment its cover ends. After a lost lease (`leaseLost`) every primary
 *   lives on its cover only, fresh lease or not, until `reverify` has read `primary/<id>`
 *   again (P6).
 */
export class SelfFence {
  #episode: Episode | undefined;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #stopped = false;
  /** The lease was lost: primaries are not re-verified yet (P6). */
  #unverified = false;

  constructor(private readonly deps: SelfFenceDeps) {}

  get active(): boolean {
    return this.#episode !== undefined;
  }

  /** Local primaries alive past the fence point on their failsafe cover, now. */
  keptPrimaries(): number {
    const episode = this.#episode;
    if (!episode) return 0;
    return [...episode.covered.keys()].filter((container) => !episode.killed.has(container)).length;
  }

  /** True from a lost lease until the primaries were read again in etcd (P6). */
  get awaitingReverify(): boolean {
    return this.#unverified;
  }

  /** The node lease was lost (etcd said so): from now until `reverify`, primaries live on their cover. */
  leaseLost(): void {
    if (this.#unverified) return;
    this.#unverified = true;
    this.deps.log.warn(
      'node lease lost: every local primary lives on its failsafe cover until primary/<id> is read again',
    );
  }

  /**
   * P6, after the node registered again: keeps each surviving primary only if `claim` (a
   * fresh read of `primary/<id>`) still names it at its epoch, kills it otherwise. Throws
   * (and stays unverified) when a read fails; the caller tries again.
   */
  async reverify(
    claim: (entry: AppliedReplica) => Promise<{ ok: true } | { ok: false; reason: string }>,
  ): Promise<void> {
    if (!this.#unverified) return;
    const episode = this.#episode ?? this.#begin(Date.now(), this.deps.lastRenewedAt());
    for (const entry of this.deps.applied.all()) {
      if (!entry.mayBePrimary || episode.killed.has(entry.containerId)) continue;
      const verdict = entry.epoch === undefined ? { ok: false as const, reason: 'epoch unknown' } : await claim(entry);
      if (!verdict.ok)
        await this.#kill(
          episode,
          entry,
          `primary/${entry.ref.instanceId} moved while the lease was lost (${verdict.reason})`,
        );
    }
    this.#unverified = false;
    await this.check();
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
    const { leaseTtlMs, marginMs } = this.deps;
    const lastRenewedAt = this.deps.lastRenewedAt();
    const now = Date.now();
    const leaseAgeMs = now - lastRenewedAt;
    if (leaseAgeMs > leaseTtlMs - marginMs || this.#unverified) {
      const episode = this.#episode ?? this.#begin(now, lastRenewedAt);
      await this.#killUncovered(episode, now);
    } else if (this.#episode) {
      this.#lift(this.#episode, now);
    }
  }

  #begin(now: number, lastRenewedAt: number): Episode {
    const { leaseTtlMs, marginMs, log } = this.deps;
    this.#episode = { startedAt: now, lastRenewedAt, killed: new Map(), covered: new Map() };
    log.error(
      { lastRenewedAt, leaseAgeMs: now - lastRenewedAt, leaseTtlMs, marginMs, leaseLost: this.#unverified },
      'self-fencing: the node lease cannot be relied on; killing every local primary its replicas do not cover',
    );
    return this.#episode;
  }

  async #killUncovered(episode: Episode, now: number): Promise<void> {
    const targets = this.deps.applied.all().filter((e) => e.mayBePrimary && !episode.killed.has(e.containerId));
    await Promise.all(
      targets.map((entry) => {
        const until = this.deps.coveredUntil?.(entry.ref.instanceId) ?? Number.NEGATIVE_INFINITY;
        if (keepCovered(now, until)) {
          if (!episode.covered.has(entry.containerId)) {
            const alone = until === Number.POSITIVE_INFINITY;
            episode.covered.set(entry.containerId, { replica: `${entry.ref.instanceId}/${entry.ref.ordinal}`, alone });
            this.deps.log.warn(
              {
                instanceId: entry.ref.instanceId,
                ordinal: entry.ref.ordinal,
                ...(alone ? {} : { coveredForMs: until - now }),
              },
              alone
                ? 'failsafe: primary kept, it has no other replica (none can be promoted without fencing this node)'
                : 'failsafe: primary kept, every other replica promised not to take over',
            );
          }
          return undefined;
        }
        const why = episode.covered.has(entry.containerId)
          ? 'its failsafe cover ended'
          : 'no failsafe cover (a replica refused, is unreachable, or there is none)';
        return this.#kill(episode, entry, why);
      }),
    );
  }

  async #kill(episode: Episode, entry: AppliedReplica, why: string): Promise<void> {
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
    episode.killed.set(entry.containerId, { replica, sinceRenewalMs, why });
    entry.fencedReason = `self-fenced: killed ${sinceRenewalMs} ms after the last confirmed lease renewal; ${why}`;
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
    const killed = [...episode.killed.values()].map((k) => `${k.replica} (+${k.sinceRenewalMs} ms: ${k.why})`);
    const kept = [...episode.covered].filter(([container]) => !episode.killed.has(container)).map(([, k]) => k);
    const promised = kept.filter((k) => !k.alone).map((k) => k.replica);
    const alone = kept.filter((k) => k.alone).map((k) => k.replica);
    const message =
      `node ${node} fenced itself: no lease renewal confirmed for ${episode.startedAt - episode.lastRenewedAt} ms ` +
      `(TTL ${leaseTtlMs} ms, margin ${marginMs} ms); killed ${killed.length > 0 ? killed.join(', ') : 'no primary'}; ` +
      (promised.length > 0 ? `kept ${promised.join(', ')} writing on the failsafe promises of its replicas; ` : '') +
      (alone.length > 0 ? `kept ${alone.join(', ')} writing with no other replica to take over; ` : '') +
      `lease renewed again after ${now - episode.startedAt} ms`;
    log.warn({ killed: killed.length }, `self-fence lifted: ${message}`);
    void events.record('node-self-fenced', message, { node });
    this.deps.onLifted();
  }
}
