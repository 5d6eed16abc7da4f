import { EventEmitter } from 'node:events';
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { BadRecordError } from './errors.js';
import { decodeKeyValue, decodeKeyValues, logRejected, type Versioned } from './etcd-reads.js';
import type { RecordCodec } from './records/codec.js';

export interface MirrorChange<T> {
  key: string;
  /** Undefined when the key was deleted. */
  current: Versioned<T> | undefined;
}

/**
 * An in-memory copy of every record under a prefix, kept current by a watch.
 *
 * It lists, then watches from the list's revision + 1; when the watch fails (compaction,
 * cancel) it lists and watches again, so a reader never misses a state, only intermediate
 * versions. Every value goes through the codec: a malformed write is logged, announced as
 * `rejected` and otherwise ignored — the key keeps its last good record (or stays absent),
 * listeners never see it. Listener errors are logged, never thrown into the etcd client
 * (which would crash the process).
 */
export class PrefixMirror<T> extends EventEmitter<{
  change: [MirrorChange<T>[]];
  rejected: [BadRecordError[]];
  synced: [];
}> {
  readonly items = new Map<string, Versioned<T>>();
  #watcher: Watcher | undefined;
  #closed = false;
  #revision = '0';

  constructor(
    private readonly client: Etcd3,
    readonly codec: RecordCodec<T>,
    readonly prefix: string,
    private readonly log: Logger,
  ) {
    super();
  }

  get revision(): string {
    return this.#revision;
  }

  async start(): Promise<void> {
    await this.#resync();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }

  #emit(changes: MirrorChange<T>[], rejected: BadRecordError[]): void {
    if (rejected.length > 0) this.#emitSafely('rejected', rejected);
    if (changes.length > 0) this.#emitSafely('change', changes);
  }

  #emitSafely(...args: ['change', MirrorChange<T>[]] | ['rejected', BadRecordError[]]): void {
    try {
      if (args[0] === 'change') this.emit('change', args[1]);
      else this.emit('rejected', args[1]);
    } catch (error) {
      this.log.error({ err: error, prefix: this.prefix }, 'mirror listener failed');
    }
  }

  async #resync(): Promise<void> {
    if (this.#closed) return;
    const old = this.#watcher;
    this.#watcher = undefined;
    await old?.cancel().catch(() => undefined);
    const res = await this.client.getAll().prefix(this.prefix).exec();
    const { items, rejected } = decodeKeyValues(this.codec, res.kvs, this.log);
    // A key whose value is malformed now keeps its last good record, as a watched write does.
    for (const error of rejected) {
      const kept = this.items.get(error.key);
      if (kept) items.set(error.key, kept);
    }
    const changes: MirrorChange<T>[] = [];
    for (const key of this.items.keys()) {
      if (!items.has(key)) changes.push({ key, current: undefined });
    }
    for (const [key, item] of items) {
      if (this.items.get(key)?.modRevision !== item.modRevision) changes.push({ key, current: item });
    }
    this.items.clear();
    for (const [key, item] of items) this.items.set(key, item);
    this.#revision = res.header.revision;
    this.#emit(changes, rejected);
    const watcher = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(BigInt(res.header.revision) + 1n))
      .create();
    if (this.#closed) {
      await watcher.cancel();
      return;
    }
    this.#watcher = watcher;
    watcher.on('data', (data) => {
      const batch: MirrorChange<T>[] = [];
      const rejectedNow: BadRecordError[] = [];
      for (const event of data.events) {
        const key = event.kv.key.toString();
        if (event.type === 'Delete') {
          this.items.delete(key);
          batch.push({ key, current: undefined });
          continue;
        }
        try {
          const item = decodeKeyValue(this.codec, event.kv);
          this.items.set(key, item);
          batch.push({ key, current: item });
        } catch (error) {
          if (!(error instanceof BadRecordError)) throw error;
          logRejected(this.log, error);
          rejectedNow.push(error);
        }
      }
      this.#revision = data.header.revision;
      this.#emit(batch, rejectedNow);
    });
    // etcd3 re-opens a lost watch stream by itself (on another member, after a backoff);
    // the time between these two is the time this copy was blind.
    watcher.on('disconnected', (error: unknown) => {
      this.log.debug({ err: error, prefix: this.prefix }, 'watch stream lost; etcd3 reconnects');
    });
    watcher.on('connected', () => this.log.debug({ prefix: this.prefix }, 'watch stream open'));
    watcher.on('error', (error) => {
      this.log.warn({ err: error, prefix: this.prefix }, 'watch failed; re-listing');
      this.#resyncSoon();
    });
    this.emit('synced');
  }

  #resyncSoon(): void {
    setTimeout(() => {
      this.#resync().catch((error: unknown) => {
        this.log.warn({ err: error, prefix: this.prefix }, 're-list failed; retrying');
        this.#resyncSoon();
      });
    }, 500).unref();
  }
}
