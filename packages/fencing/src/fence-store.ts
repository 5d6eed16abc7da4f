import {
  ConflictError,
  decodeKeyValues,
  type Etcd3,
  InvalidConfigError,
  InvalidInputError,
  json,
  type Keyspace,
  readPrefix,
  readRecord,
  readSealed,
  type SecretBox,
  SecretBoxError,
  sealedValue,
  type Versioned,
} from '@service-foundry/core';
import {
  type FenceDevicesRecord,
  fenceDevicesCodec,
  keepRedactedSecrets,
  parseFenceDevices,
  parseFenceDevicesRecord,
} from './device-config.js';
import type { FenceAgents } from './fence-agents.js';
import { fenceHistoryCodec, storedFenceCodec } from './fence-records.js';
import type { StoredFenceRecord } from './fence-state-machine.js';
import type { FenceHistoryEntry } from './history.js';

/**
 * Reads and writes of the fencing keys; key names come from core's Keyspace only. The
 * stored form of fence devices (`fence-devices/<node>`: the validated config, secret
 * options included, sealed whole with the secrets key) is decided here and in
 * device-config.ts only.
 */
export class FenceStore {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly agents: FenceAgents,
    private readonly box: SecretBox,
  ) {}

  record(node: string): Promise<Versioned<StoredFenceRecord> | undefined> {
    return readRecord(this.client, storedFenceCodec, this.keys.fence(node));
  }

  /** Every node's fence record (malformed ones skipped and logged). */
  async records(): Promise<StoredFenceRecord[]> {
    const snapshot = await readPrefix(this.client, storedFenceCodec, this.keys.fences());
    return [...snapshot.items.values()].map((item) => item.value);
  }

  /**
   * Puts `next` only if `fence/<node>` is still what was read (`basedOn`; absent when
   * undefined). One transaction, so two callers can never both claim an attempt. The
   * history entry, when given, is written in the same transaction, or alone when the
   * compare fails (what ran must be audited either way), with `recorded` set to say which.
   * `written` is true when `next` was written.
   */
  async compareAndPut(
    node: string,
    basedOn: Versioned<StoredFenceRecord> | undefined,
    next: StoredFenceRecord,
    history?: FenceHistoryEntry,
  ): Promise<{ written: boolean; revision: string }> {
    const key = this.keys.fence(node);
    const txn = basedOn
      ? this.client.if(key, 'Mod', '==', basedOn.modRevision)
      : this.client.if(key, 'Create', '==', 0);
    const historyPut = (recorded: boolean) =>
      history ? [this.client.put(this.historyKey(history)).value(json({ ...history, recorded }))] : [];
    const res = await txn
      .then(this.client.put(key).value(json(next)), ...historyPut(true))
      .else(...historyPut(false))
      .commit();
    if (history) history.recorded = res.succeeded;
    return { written: res.succeeded, revision: res.header.revision };
  }

  async appendHistory(entry: FenceHistoryEntry): Promise<void> {
    await this.client.put(this.historyKey(entry)).value(json(entry)).exec();
  }

  historyKey(entry: FenceHistoryEntry): string {
    return this.keys.fenceHistoryEntry(Date.parse(entry.startedAt), entry.id);
  }

  /** The newest `limit` entries, newest first; optionally of one node only. */
  async history(limit: number, node?: string): Promise<FenceHistoryEntry[]> {
    // Filtering by node reads more; history is small (one entry per request) and an
    // operator's view, not a hot path.
    const res = await this.client
      .getAll()
      .prefix(this.keys.fenceHistory())
      .sort('Key', 'Descend')
      .limit(node ? 0 : limit)
      .exec();
    const entries = [...decodeKeyValues(fenceHistoryCodec, res.kvs).items.values()]
      .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
      .map((item) => item.value);
    return (node ? entries.filter((e) => e.node === node) : entries).slice(0, limit);
  }

  /**
   * The node's fence devices, validated. Undefined when none are configured; a stored value
   * that does not open throws InvalidConfigError, one that is malformed BadRecordError
   * (either is reported as the fencing failure's reason).
   */
  async devices(node: string): Promise<Readonly<FenceDevicesRecord> | undefined> {
    return (await this.#readDevices(node))?.value;
  }

  /** The sealed record, opened and checked; a value that does not open is an invalid config. */
  async #readDevices(node: string): Promise<Versioned<Readonly<FenceDevicesRecord>> | undefined> {
    try {
      return await readSealed(this.client, this.box, fenceDevicesCodec, this.keys.fenceDevices(node));
    } catch (error) {
      if (error instanceof SecretBoxError) {
        throw new InvalidConfigError(`fence devices of ${node}`, [
          `stored value is not a sealed record: ${error.message}`,
        ]);
      }
      throw error;
    }
  }

  /**
   * Validates and stores an operator's fence devices: the schema, then every device's
   * agent against the allow-list and its options against the agent's own metadata
   * (InvalidInputError listing every problem; nothing is written). Secret options sent
   * back as the redaction marker keep their stored values.
   */
  async setDevices(node: string, input: unknown, by: string): Promise<Readonly<FenceDevicesRecord>> {
    const parsed = parseFenceDevices(input);
    const key = this.keys.fenceDevices(node);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.#readDevices(node);
      const merged = keepRedactedSecrets(parsed, current?.value);
      const problems = await this.agents.configProblems(merged);
      if (problems.length > 0) throw new InvalidInputError('invalid fence devices', problems);
      const record = parseFenceDevicesRecord({
        ...merged,
        node,
        updatedAt: new Date().toISOString(),
        updatedBy: by,
      });
      const guard = current
        ? this.client.if(key, 'Mod', '==', current.modRevision)
        : this.client.if(key, 'Create', '==', 0);
      const res = await guard.then(this.client.put(key).value(sealedValue(this.box, key, record))).commit();
      if (res.succeeded) return record;
    }
    throw new ConflictError(`fence devices of ${node} kept changing while being written; try again`);
  }

  async deleteDevices(node: string): Promise<boolean> {
    const res = await this.client.delete().key(this.keys.fenceDevices(node)).exec();
    return Number(res.deleted) > 0;
  }
}
