import { setTimeout as delay } from 'node:timers/promises';
import { type BackupRecord, backupCodec, type Etcd3, json, readRecord } from '@service-foundry/core';

/** A copy of the record without its progress (progress only means something while running). */
export function withoutProgress(record: BackupRecord): BackupRecord {
  const copy = { ...record };
  delete copy.progress;
  return copy;
}

/**
 * The backup record this agent claimed, written only while it still has the mod revision
 * of this agent's last write. A record an operator deleted (or anyone else rewrote) is
 * therefore never brought back by a late progress or completion write: the write fails its
 * compare, the record counts as lost, and every later write is skipped.
 *
 * Writes are serialized, so a completion never races an in-flight progress write.
 */
export class OwnBackupRecord {
  #value: BackupRecord;
  #revision: string;
  #lost = false;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: Etcd3,
    readonly key: string,
    value: BackupRecord,
    revision: string,
  ) {
    this.#value = value;
    this.#revision = revision;
  }

  get value(): BackupRecord {
    return this.#value;
  }

  /** True once a write found the record changed by someone else (or deleted). */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Writes `mutate(current)`; false when the record is lost. Throws when etcd cannot be
   * reached (the record is then unchanged, or, when the answer was lost, written: a later
   * write finds out which).
   */
  update(mutate: (current: BackupRecord) => BackupRecord): Promise<boolean> {
    const run = this.#chain.then(() => this.#write(mutate(this.#value)));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** `update`, tried again on etcd errors (a final state must not be dropped by one failed call). */
  async settle(mutate: (current: BackupRecord) => BackupRecord, attempts = 5): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.update(mutate);
      } catch (error) {
        if (attempt >= attempts) throw error;
        await delay(500 * attempt);
      }
    }
  }

  async #write(next: BackupRecord): Promise<boolean> {
    if (this.#lost) return false;
    const { client, key } = this;
    const text = json(next);
    try {
      const res = await client.if(key, 'Mod', '==', this.#revision).then(client.put(key).value(text)).commit();
      if (!res.succeeded) {
        this.#lost = true;
        return false;
      }
      this.#revision = res.header.revision;
    } catch (error) {
      // The put may have been applied with its answer lost: adopt it when the key holds exactly our value.
      const current = await readRecord(client, backupCodec, key).catch(() => undefined);
      if (!current || json(current.value) !== text) throw error;
      this.#revision = current.modRevision;
    }
    this.#value = next;
    return true;
  }
}
