import {
  type AppliedPasswords,
  BadRecordError,
  type ContainerLimits,
  type Etcd3,
  type FailsafePeers,
  type IoPolicy,
  json,
  type Keyspace,
  type Logger,
  type ReplicaRole,
  type ReplicaState,
  type ReplicaStatus,
  readRecord,
  replicaId,
  statusCodec,
} from '@service-foundry/core';
import type { ReplicaRef } from './container-spec.js';
import { StatusDeleteError } from './errors.js';

/** The parts of a status the reconciler decides; the writer adds identity and time. */
export interface StatusUpdate {
  state: ReplicaState;
  message: string;
  host?: string;
  port?: number;
  containerId?: string;
  /** Replicated services: what is applied inside the service (see applied-replicas.ts). */
  role?: ReplicaRole;
  epoch?: number;
  peer?: { host: string; port: number };
  position?: string;
  positionAt?: string;
  io?: IoPolicy;
  generation?: number;
  /** The image the running container was created from. */
  image?: string;
  /** The CPU and memory limits the container runs with. */
  limits?: ContainerLimits;
  /** The password rotation the running server has taken on (password-rotation.ts). */
  passwords?: AppliedPasswords;
  /** Set by the writer itself on a failsafe agent (see {@link StatusWriter.reportPeers}). */
  peers?: FailsafePeers;
}

/** A status write at least this long is logged: it delayed what queued behind it. */
const slowWriteMs = 1000;

const updateFields = [
  'state',
  'message',
  'host',
  'port',
  'containerId',
  'role',
  'epoch',
  'peer',
  'position',
  'positionAt',
  'io',
  'generation',
  'image',
  'limits',
  'passwords',
  'peers',
] as const satisfies readonly (keyof StatusUpdate)[];

function sameStatus(a: ReplicaStatus, b: StatusUpdate): boolean {
  return updateFields.every((field) => JSON.stringify(a[field]) === JSON.stringify(b[field]));
}

/** The update part of a status, without identity and time. */
function updateOf(status: ReplicaStatus): StatusUpdate {
  const update: Record<string, unknown> = {};
  for (const field of updateFields) if (status[field] !== undefined) update[field] = status[field];
  return update as unknown as StatusUpdate;
}

/**
 * Keeps the latest status of every replica of this node and mirrors it to etcd under the
 * node lease. Writes per replica are serialised and always send the latest value, so a
 * slow write can never overwrite a newer one. A failed write is remembered and retried by
 * {@link flushDirty} (periodic pass) or {@link rewriteAll} (after a new lease).
 */
export class StatusWriter {
  /** `null` marks a status whose key is being deleted. */
  readonly #latest = new Map<string, { ref: ReplicaRef; status: ReplicaStatus | null }>();
  readonly #chains = new Map<string, Promise<boolean>>();
  readonly #dirty = new Set<string>();
  /**
   * Replica id → the passwords its running container has taken on. Kept here, not by the
   * decisions that write whole statuses, so every later status of the same running
   * container still reports them.
   */
  readonly #passwords = new Map<string, { containerId: string; value: AppliedPasswords }>();
  /** The failsafe's knowledge of each instance's other replicas, stamped on every status (C2). */
  #peersOf: ((instanceId: string) => FailsafePeers) | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly node: string,
    private readonly leaseId: () => Promise<string>,
    private readonly log: Logger,
  ) {}

  current(ref: ReplicaRef): ReplicaStatus | undefined {
    return this.#latest.get(replicaId(ref.instanceId, ref.ordinal))?.status ?? undefined;
  }

  /** Replicas that have (or are losing) a status written by this agent. */
  known(): ReplicaRef[] {
    return [...this.#latest.values()].map((entry) => entry.ref);
  }

  /**
   * From now on every status carries `peers(instanceId)`. Stamped on all of them, not only a
   * primary's: a replica just promoted may still report role `replica`, and the controller
   * must never mistake its status for one of an agent without the failsafe.
   */
  reportPeers(peers: (instanceId: string) => FailsafePeers): void {
    this.#peersOf = peers;
  }

  /**
   * Writes again the statuses of `instanceId` whose peers changed, for the replicas the same
   * read placed on this node: after a relocation the status key is the new node's, and the
   * old node's remembered `stopped` must not overwrite it.
   */
  async peersChanged(instanceId: string, placedHere: ReadonlySet<number>): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const { ref, status } of this.#latest.values()) {
      if (status && ref.instanceId === instanceId && placedHere.has(ref.ordinal)) {
        writes.push(this.set(ref, updateOf(status)));
      }
    }
    await Promise.all(writes);
  }

  /**
   * Stops writing the replica's status, leaving its key alone: a relocation switched the
   * replica to another node, whose agent writes it now (a rewrite after a new lease must
   * not bring this node's `stopped` back).
   */
  forget(ref: ReplicaRef): void {
    const id = replicaId(ref.instanceId, ref.ordinal);
    if (this.#latest.get(id)?.status === null) return;
    this.#latest.delete(id);
    this.#dirty.delete(id);
    this.#passwords.delete(id);
  }

  /** Records and writes a status; unchanged statuses are not rewritten. Never throws. */
  async set(ref: ReplicaRef, update: StatusUpdate): Promise<void> {
    const id = replicaId(ref.instanceId, ref.ordinal);
    if (this.#peersOf) update = { ...update, peers: this.#peersOf(ref.instanceId) };
    const applied = this.#passwords.get(id);
    if (applied && update.passwords === undefined && update.state === 'running') {
      if (applied.containerId === update.containerId) update = { ...update, passwords: applied.value };
    }
    const previous = this.#latest.get(id)?.status;
    if (previous && sameStatus(previous, update) && !this.#dirty.has(id)) return;
    const status: ReplicaStatus = {
      instanceId: ref.instanceId,
      ordinal: ref.ordinal,
      node: this.node,
      ...update,
      updatedAt: new Date().toISOString(),
    };
    this.#latest.set(id, { ref: { instanceId: ref.instanceId, ordinal: ref.ordinal }, status });
    // Position updates arrive every second: only state and message changes are worth a line.
    const level = previous?.state === update.state && previous.message === update.message ? 'debug' : 'info';
    this.log[level](
      { instanceId: ref.instanceId, ordinal: ref.ordinal, state: update.state, statusMessage: update.message },
      'replica status',
    );
    await this.#flush(id);
  }

  /**
   * Merges observations (position, role, …) into the status of a running container; does
   * nothing when the status is about another container or not `running`.
   */
  async observe(ref: ReplicaRef, containerId: string, patch: Partial<StatusUpdate>): Promise<void> {
    const current = this.current(ref);
    if (!current || current.containerId !== containerId || current.state !== 'running') return;
    await this.set(ref, { ...updateOf(current), ...patch });
  }

  /** Reports the passwords a running container has taken on, in this and every later status of it. */
  async passwordsApplied(ref: ReplicaRef, containerId: string, value: AppliedPasswords): Promise<void> {
    this.#passwords.set(replicaId(ref.instanceId, ref.ordinal), { containerId, value });
    await this.observe(ref, containerId, { passwords: value });
  }

  /** Deletes the replica's status key; throws when etcd did not confirm the delete. */
  async remove(ref: ReplicaRef): Promise<void> {
    const id = replicaId(ref.instanceId, ref.ordinal);
    this.#passwords.delete(id);
    this.#latest.set(id, { ref, status: null });
    if (!(await this.#flush(id))) throw new StatusDeleteError(id);
  }

  /** Writes every known status again, e.g. under a new lease. */
  async rewriteAll(): Promise<void> {
    await Promise.all([...this.#latest.keys()].map((id) => this.#flush(id)));
  }

  /** Retries writes that failed earlier. */
  async flushDirty(): Promise<void> {
    await Promise.all([...this.#dirty].map((id) => this.#flush(id)));
  }

  #flush(id: string): Promise<boolean> {
    const previous = this.#chains.get(id) ?? Promise.resolve(true);
    const next = previous.then(() => this.#write(id));
    this.#chains.set(id, next);
    void next.finally(() => {
      if (this.#chains.get(id) === next) this.#chains.delete(id);
    });
    return next;
  }

  /**
   * Deletes the status key only while it is this node's: after a relocation the replica's
   * status is written by its new node, and the old node's clean-up must not erase it.
   */
  async #deleteOwn(key: string): Promise<void> {
    const current = await readRecord(this.client, statusCodec, key).catch((error: unknown) => {
      // Not a status this agent could have written: it is not ours to delete.
      if (error instanceof BadRecordError) return undefined;
      throw error;
    });
    if (!current || current.value.node !== this.node) return;
    await this.client.if(key, 'Mod', '==', current.modRevision).then(this.client.delete().key(key)).commit();
  }

  /** Sends whatever is latest at the moment the write runs. */
  async #write(id: string): Promise<boolean> {
    const entry = this.#latest.get(id);
    if (!entry) return true;
    const key = this.keys.status(entry.ref.instanceId, entry.ref.ordinal);
    const startedAt = Date.now();
    try {
      if (entry.status === null) {
        await this.#deleteOwn(key);
        if (this.#latest.get(id) === entry) this.#latest.delete(id);
      } else {
        await this.client
          .put(key)
          .value(json(entry.status))
          .lease(await this.leaseId())
          .exec();
      }
      this.#dirty.delete(id);
      const tookMs = Date.now() - startedAt;
      // A write normally takes milliseconds; a slow one held every later status of the
      // replica (they queue behind it) and what the controller waits on.
      if (tookMs >= slowWriteMs) this.log.warn({ key, tookMs }, 'slow status write');
      return true;
    } catch (error) {
      this.#dirty.add(id);
      this.log.warn({ err: error, key }, 'status write failed; will retry');
      return false;
    }
  }
}
