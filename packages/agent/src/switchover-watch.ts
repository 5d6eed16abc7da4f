import {
  BadRecordError,
  decodeKeyValue,
  type Etcd3,
  type Keyspace,
  type Logger,
  PrefixMirror,
  type SwitchoverRecord,
  statusCodec,
  switchoverCodec,
  type Watcher,
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
 * `requested`, every replica but the old primary while `stopping`. While `stopping`, it
 * also watches the old primary's status: the moment it says `stopped`, a reading is wanted
 * at once rather than at the next tick (the decision waits on the first one after it).
 * Reads `switchovers/` and those status keys.
 */
export class SwitchoverWatch {
  readonly #records: PrefixMirror<SwitchoverRecord>;
  /** Instance id → its switchover in `requested` or `stopping`. */
  readonly #waiting = new Map<string, SwitchoverRecord>();
  /** Instance id → the watch of its old primary's status, while `stopping`. */
  readonly #stops = new Map<string, Promise<Watcher | undefined>>();
  #onUrgent: () => void = () => {};
  #stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly log: Logger,
  ) {
    this.#records = new PrefixMirror(client, switchoverCodec, keys.switchovers(), log);
  }

  /**
   * `onUrgent`: a switchover entered `requested` or `stopping`, or its old primary was
   * written `stopped` (a reading is wanted now).
   */
  async start(onUrgent: () => void): Promise<void> {
    this.#onUrgent = onUrgent;
    this.#records.on('change', () => {
      if (this.#refresh()) onUrgent();
    });
    await this.#records.start();
    if (this.#refresh()) onUrgent();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#records.close();
    for (const id of [...this.#stops.keys()]) await this.#unwatchStop(id);
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
    for (const record of this.#waiting.values()) if (record.phase === 'stopping') this.#watchStop(record);
    for (const id of [...this.#stops.keys()]) {
      if (this.#waiting.get(id)?.phase !== 'stopping') void this.#unwatchStop(id);
    }
    return entered;
  }

  #watchStop(record: SwitchoverRecord): void {
    if (this.#stopped || this.#stops.has(record.instanceId)) return;
    const key = this.keys.status(record.instanceId, record.from.ordinal);
    const watching = this.client
      .watch()
      .key(key)
      .create()
      .then((watcher) => {
        watcher.on('put', (kv) => {
          try {
            const stillStopping = this.#waiting.get(record.instanceId)?.phase === 'stopping';
            if (stillStopping && decodeKeyValue(statusCodec, kv).value.state === 'stopped') this.#onUrgent();
          } catch (error) {
            if (!(error instanceof BadRecordError)) throw error;
          }
        });
        watcher.on('error', () => undefined);
        return watcher;
      })
      .catch((error: unknown) => {
        // The tick's readings still come: only the head start is lost.
        this.log.debug({ err: error, key }, "cannot watch the old primary's status");
        return undefined;
      });
    this.#stops.set(record.instanceId, watching);
  }

  async #unwatchStop(instanceId: string): Promise<void> {
    const watching = this.#stops.get(instanceId);
    this.#stops.delete(instanceId);
    await (await watching)?.cancel().catch(() => undefined);
  }
}

function urgentSince(record: SwitchoverRecord): number {
  return Date.parse(record.phase === 'requested' ? record.requestedAt : (record.stoppingAt ?? record.updatedAt));
}
