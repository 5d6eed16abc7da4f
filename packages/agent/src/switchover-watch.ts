import {
  type Etcd3,
  type Keyspace,
  type Logger,
  PrefixMirror,
  type SwitchoverRecord,
  switchoverCodec,
} from '@service-foundry/core';

/**
 * After this long in `stopping` a switchover no longer makes positions urgent: the
 * controller gives up after 20 s, and a controller that died mid-way must not keep every
 * agent reading positions 20 times a second.
 */
export const urgentForMs = 30_000;

/**
 * Switchovers under way, as an agent needs them. While a switchover is `stopping`, the
 * controller promotes on the first positions read after the old primary stopped, so the
 * position reporter reads this node's other replicas of that instance at its urgent
 * interval and writes every reading (see position-reporter.ts). Reads `switchovers/` only.
 */
export class SwitchoverWatch {
  readonly #records: PrefixMirror<SwitchoverRecord>;
  /** Instance id → the switchover that is `stopping`. */
  readonly #stopping = new Map<string, SwitchoverRecord>();

  constructor(client: Etcd3, keys: Keyspace, log: Logger) {
    this.#records = new PrefixMirror(client, switchoverCodec, keys.switchovers(), log);
  }

  /** `onStopping`: a switchover entered `stopping` (a reading is wanted now). */
  async start(onStopping: () => void): Promise<void> {
    this.#records.on('change', () => {
      if (this.#refresh()) onStopping();
    });
    await this.#records.start();
    if (this.#refresh()) onStopping();
  }

  stop(): Promise<void> {
    return this.#records.close();
  }

  /** True while the replica's position decides a switchover: it is not the old primary. */
  urgent(instanceId: string, ordinal: number, now = Date.now()): boolean {
    const record = this.#stopping.get(instanceId);
    return record !== undefined && record.from.ordinal !== ordinal && now - stoppingSince(record) < urgentForMs;
  }

  /** True while any switchover makes positions urgent. */
  anyUrgent(now = Date.now()): boolean {
    for (const record of this.#stopping.values()) if (now - stoppingSince(record) < urgentForMs) return true;
    return false;
  }

  /** Rebuilds the set of `stopping` switchovers; true when one is new. */
  #refresh(): boolean {
    let added = false;
    const current = new Set<string>();
    for (const { value } of this.#records.items.values()) {
      if (value.phase !== 'stopping') continue;
      current.add(value.instanceId);
      if (!this.#stopping.has(value.instanceId)) added = true;
      this.#stopping.set(value.instanceId, value);
    }
    for (const id of [...this.#stopping.keys()]) if (!current.has(id)) this.#stopping.delete(id);
    return added;
  }
}

function stoppingSince(record: SwitchoverRecord): number {
  return Date.parse(record.stoppingAt ?? record.updatedAt);
}
