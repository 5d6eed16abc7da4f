import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { EtcdTlsFiles } from './component-config.js';
import { InvalidConfigError } from './errors.js';

export { Etcd3, EtcdPermissionDeniedError } from 'etcd3';

export interface EtcdConnectOptions {
  /** Client URLs, e.g. `["https://10.0.0.1:2379"]`. */
  endpoints: readonly string[];
  /**
   * Client certificate (its CN is the etcd user: RBAC decides what it may touch) and the
   * CA that signed etcd's server certificate. Required for `https://` endpoints.
   * @default undefined (plain `http://`, for tests against a throw-away etcd only)
   */
  tls?: EtcdTlsFiles | undefined;
  /** @default 5000 */
  dialTimeoutMs?: number;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InvalidConfigError('etcd TLS', [`${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`]);
  }
}

function credentials(tls: EtcdTlsFiles): Pick<IOptions, 'credentials' | 'grpcOptions'> {
  return {
    credentials: {
      rootCertificate: readPem(tls.caFile, 'CA file'),
      certChain: readPem(tls.certFile, 'certificate file'),
      privateKey: readPem(tls.keyFile, 'key file'),
    },
    // Endpoints are usually IP addresses; the server certificate is checked against this
    // DNS name instead (an IP is not a valid TLS server name).
    ...(tls.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': tls.serverName } } : {}),
  };
}

export function connectEtcd(options: EtcdConnectOptions): Etcd3 {
  const secure = options.endpoints.some((e) => e.startsWith('https://'));
  if (secure && !options.tls) {
    throw new InvalidConfigError('etcd connection', ['https:// endpoints need etcdTls (CA, certificate, key files)']);
  }
  if (options.tls && !options.endpoints.every((e) => e.startsWith('https://'))) {
    throw new InvalidConfigError('etcd connection', ['with etcdTls every endpoint must be https://']);
  }
  return new Etcd3({
    hosts: [...options.endpoints],
    dialTimeout: options.dialTimeoutMs ?? 5000,
    ...(options.tls ? credentials(options.tls) : {}),
    // Failures must surface to our own loops, which decide what a failed write means.
    faultHandling: { global: undefined as never, host: undefined as never },
  });
}

/** A JSON value read from etcd with the revisions that transactions compare against. */
export interface Versioned<T> {
  key: string;
  value: T;
  modRevision: string;
  createRevision: string;
  lease: string;
}

function decode<T>(kv: IKeyValue): Versioned<T> {
  return {
    key: kv.key.toString(),
    value: JSON.parse(kv.value.toString()) as T,
    modRevision: kv.mod_revision,
    createRevision: kv.create_revision,
    lease: kv.lease,
  };
}

export async function readJson<T>(client: Etcd3, key: string): Promise<Versioned<T> | undefined> {
  const res = await client.get(key).exec();
  const kv = res.kvs[0];
  return kv ? decode<T>(kv) : undefined;
}

export interface PrefixSnapshot<T> {
  revision: string;
  items: Map<string, Versioned<T>>;
}

export async function readPrefix<T>(client: Etcd3, prefix: string): Promise<PrefixSnapshot<T>> {
  const res = await client.getAll().prefix(prefix).exec();
  const items = new Map<string, Versioned<T>>();
  for (const kv of res.kvs) items.set(kv.key.toString(), decode<T>(kv));
  return { revision: res.header.revision, items };
}

export function json(value: unknown): string {
  return JSON.stringify(value);
}

export interface MirrorChange<T> {
  key: string;
  /** Undefined when the key was deleted. */
  current: Versioned<T> | undefined;
}

/**
 * An in-memory copy of everything under a prefix, kept current by a watch.
 *
 * It lists, then watches from the list's revision + 1; when the watch fails (compaction,
 * cancel) it lists and watches again, so a reader never misses a state, only intermediate
 * versions. Listener errors are logged, never thrown into the etcd client (which would
 * crash the process).
 */
export class PrefixMirror<T> extends EventEmitter<{ change: [MirrorChange<T>[]]; synced: [] }> {
  readonly items = new Map<string, Versioned<T>>();
  #watcher: Watcher | undefined;
  #closed = false;
  #revision = '0';

  constructor(
    private readonly client: Etcd3,
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

  #emit(changes: MirrorChange<T>[]): void {
    if (changes.length === 0) return;
    try {
      this.emit('change', changes);
    } catch (error) {
      this.log.error({ err: error, prefix: this.prefix }, 'mirror listener failed');
    }
  }

  async #resync(): Promise<void> {
    if (this.#closed) return;
    const old = this.#watcher;
    this.#watcher = undefined;
    await old?.cancel().catch(() => undefined);
    const snapshot = await readPrefix<T>(this.client, this.prefix);
    const changes: MirrorChange<T>[] = [];
    for (const key of this.items.keys()) {
      if (!snapshot.items.has(key)) changes.push({ key, current: undefined });
    }
    for (const [key, item] of snapshot.items) {
      if (this.items.get(key)?.modRevision !== item.modRevision) changes.push({ key, current: item });
    }
    this.items.clear();
    for (const [key, item] of snapshot.items) this.items.set(key, item);
    this.#revision = snapshot.revision;
    this.#emit(changes);
    const watcher = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(BigInt(snapshot.revision) + 1n))
      .create();
    if (this.#closed) {
      await watcher.cancel();
      return;
    }
    this.#watcher = watcher;
    watcher.on('data', (res) => {
      const batch: MirrorChange<T>[] = [];
      for (const event of res.events) {
        const key = event.kv.key.toString();
        if (event.type === 'Delete') {
          this.items.delete(key);
          batch.push({ key, current: undefined });
        } else {
          try {
            const item = decode<T>(event.kv);
            this.items.set(key, item);
            batch.push({ key, current: item });
          } catch (error) {
            this.log.warn({ err: error, key }, 'ignoring undecodable value');
          }
        }
      }
      this.#revision = res.header.revision;
      this.#emit(batch);
    });
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
