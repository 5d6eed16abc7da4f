import {
  type Etcd3,
  type Keyspace,
  type Logger,
  PrefixMirror,
  type SwitchoverRecord,
  switchoverCodec,
} from '@service-foundry/core';

/**
 * After this long in `requested` or `stopping` a switchover no longer makes positions
 * urgent: the controller gives up after 20 s, and a controller that died mid-way must not
 * keep every agent reading positions 20 times a second.
 */
export const urgentForMs = 30_000;

/**
 * Switchovers under way, as an agent needs them. While a switchover is `requested`, the
 * controller waits for its target's fresh position report before it stops anything; while
 * it is `stopping`, the controller promotes on the first positions read after the old
 * primary stopped. So the position reporter reads those replicas of this node at its urgent
 * interval and writes every reading (see position-reporter.ts): the target while
 * `requested`, every replica but the old primary while `stopping`. Reads `switchovers/` only.
 */
export class SwitchoverWatch {
  readonly #records: PrefixMirror<SwitchoverRecord>;
  /** Instance id → its switchover in `requested` or `stopping`. */
  readonly #waiting = new Map<string, SwitchoverRecord>();

  constructor(client: Etcd3, keys: Keyspace, log: Logger) {
    this.#records = new PrefixMirror(client, switchoverCodec, keys.switchovers(), log);
  }

  /** `onUrgent`: a switchover entered `requested` or `stopping` (a reading is wanted now). */
  async start(onUrgent: () => void): Promise<void> {
    this.#records.on('change', () => {
      if (this.#refresh()) onUrgent();
    });
    await this.#records.start();
    if (this.#refresh()) onUrgent();
  }

  stop(): Promise<void> {
    return this.#records.close();
  }

  /** True while the replica's position decides a switchover. */
  urgent(instanceId: string, ordinal: number, now = Date.now()): boolean {
    const record = this.#waiting.get(instanceId);
    if (record === undefined || now - urgentSince(record) >= urgentForMs) return false;
    return record.phase === 'requested' ? record.to.ordinal === ordinal : record.from.ordinal !== ordinal;
  }

  /** True while any switchover makes positions urgent. */
  anyUrgent(now = Date.now()): boolean {
    for (const record of this.#waiting.values()) if (now - urgentSince(record) < urgentForMs) return true;
    return false;
  }

  /** Rebuilds the set of waiting switchovers; true when one is new or changed phase. */
  #refresh(): boolean {
    let entered = false;
    const current = new Set<string>();
    for (const { value } of this.#records.items.values()) {
      if (value.phase !== 'requested' && value.phase !== 'stopping') continue;
      current.add(value.instanceId);
      if (this.#waiting.get(value.instanceId)?.phase !== value.phase) entered = true;
      this.#waiting.set(value.instanceId, value);
    }
    for (const id of [...this.#waiting.keys()]) if (!current.has(id)) this.#waiting.delete(id);
    return entered;
  }
}

function urgentSince(record: SwitchoverRecord): number {
  return Date.parse(record.phase === 'requested' ? record.requestedAt : (record.stoppingAt ?? record.updatedAt));
}
