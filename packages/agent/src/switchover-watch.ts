import {
  type Etcd3,
  type Keyspace,
  type Logger,
  PrefixMirror,
  type ReplicaStatus,
  type SwitchoverRecord,
  statusCodec,
  switchoverCodec,
  type Versioned,
} from '@service-foundry/core';

/**
 * After this long in `stopping` a switchover no longer makes positions urgent: the
 * controller gives up after 20 s, and a controller that died mid-way must not keep every
 * agent reading positions 20 times a second.
 */
export const urgentForMs = 30_000;

interface Stopping {
  record: Versioned<SwitchoverRecord>;
  /** The instance's statuses, for the old primary's `stopped`. */
  statuses: PrefixMirror<ReplicaStatus>;
  /** The old primary's stop was announced to `onChange` already. */
  announced: boolean;
}

/**
 * Switchovers under way, as an agent needs them. While a switchover is `stopping`, the
 * controller promotes on the first positions read after the old primary's agent wrote its
 * `stopped` status, so the position reporter reads this node's other replicas of that
 * instance often (see position-reporter.ts) and writes the first reading begun after that
 * status at once. Reads `switchovers/`, and `status/<id>/` of instances being switched.
 */
export class SwitchoverWatch {
  readonly #records: PrefixMirror<SwitchoverRecord>;
  readonly #stopping = new Map<string, Stopping>();
  #onChange: () => void = () => undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly log: Logger,
  ) {
    this.#records = new PrefixMirror(client, switchoverCodec, keys.switchovers(), log);
  }

  /** `onChange`: a switchover began stopping, or its old primary stopped (readings are wanted now). */
  async start(onChange: () => void): Promise<void> {
    this.#onChange = onChange;
    this.#records.on('change', () => this.#refresh());
    await this.#records.start();
    this.#refresh();
  }

  async stop(): Promise<void> {
    await this.#records.close();
    await Promise.all([...this.#stopping.values()].map((s) => s.statuses.close()));
    this.#stopping.clear();
  }

  /** True while the replica's position decides a switchover: it is not the old primary. */
  urgent(instanceId: string, ordinal: number, now = Date.now()): boolean {
    const record = this.#stopping.get(instanceId)?.record.value;
    return record !== undefined && record.from.ordinal !== ordinal && now - stoppingSince(record) < urgentForMs;
  }

  /** True while any switchover makes positions urgent. */
  anyUrgent(now = Date.now()): boolean {
    for (const { record } of this.#stopping.values()) if (now - stoppingSince(record.value) < urgentForMs) return true;
    return false;
  }

  /**
   * When the old primary of the instance's `stopping` switchover was reported stopped (its
   * status's `updatedAt`, the time the controller counts readings from), if it was.
   */
  stoppedAt(instanceId: string): number | undefined {
    const stopping = this.#stopping.get(instanceId);
    if (!stopping) return undefined;
    const { record, statuses } = stopping;
    const old = statuses.items.get(this.keys.status(instanceId, record.value.from.ordinal));
    // Written after the switchover record entered `stopping`: this stop, not an earlier one.
    if (old?.value.state !== 'stopped' || BigInt(old.modRevision) <= BigInt(record.modRevision)) return undefined;
    return Date.parse(old.value.updatedAt);
  }

  #refresh(): void {
    let news = false;
    const current = new Set<string>();
    for (const versioned of this.#records.items.values()) {
      const { value } = versioned;
      if (value.phase !== 'stopping') continue;
      current.add(value.instanceId);
      const known = this.#stopping.get(value.instanceId);
      if (known) {
        known.record = versioned;
        continue;
      }
      news = true;
      const statuses = new PrefixMirror(
        this.client,
        statusCodec,
        this.keys.instanceStatuses(value.instanceId),
        this.log,
      );
      const stopping: Stopping = { record: versioned, statuses, announced: false };
      this.#stopping.set(value.instanceId, stopping);
      statuses.on('change', () => {
        if (stopping.announced || this.stoppedAt(value.instanceId) === undefined) return;
        stopping.announced = true;
        this.#onChange();
      });
      statuses.start().catch((error: unknown) => this.log.warn({ err: error }, 'cannot watch the switchover statuses'));
    }
    for (const [id, stopping] of this.#stopping) {
      if (current.has(id)) continue;
      this.#stopping.delete(id);
      void stopping.statuses.close();
    }
    if (news) this.#onChange();
  }
}

function stoppingSince(record: SwitchoverRecord): number {
  return Date.parse(record.stoppingAt ?? record.updatedAt);
}
