import {
  type AssignmentRecord,
  assignmentCodec,
  BadRecordError,
  type Etcd3,
  isKeySegment,
  Keyspace,
  type Logger,
  type MirrorChange,
  PrefixMirror,
  type RecordCodec,
  replicaId,
  type Versioned,
} from '@service-foundry/core';
import { type NodeIdentity, nodeLabels, type ReplicaRef, replicaFromLabels } from './container-spec.js';
import type { DockerRuntime } from './docker-runtime.js';
import { ReplicaQueue } from './replica-queue.js';
import { endpointText } from './replication-spec.js';
import type { StatusWriter } from './status-writer.js';

export interface AssignmentWatcherDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  log: Logger;
  reconcileIntervalMs: number;
}

/** Reconciles one replica; never called twice at once for the same replica. */
export type ReconcileReplica = (ref: ReplicaRef, signal: AbortSignal) => Promise<void>;

/**
 * An assignment as this agent keeps it. A malformed one is kept as its error rather than
 * skipped: the replica's status then says what is wrong with it, and nothing acts on it.
 */
export type AssignmentRead = { ok: true; record: AssignmentRecord } | { ok: false; error: BadRecordError };

/** The assignment codec, with a malformed record decoded into its error. */
const assignmentReadCodec: RecordCodec<AssignmentRead> = {
  name: assignmentCodec.name,
  schema: assignmentCodec.schema,
  parse(key, value) {
    try {
      return { ok: true, record: assignmentCodec.parse(key, value) };
    } catch (error) {
      if (error instanceof BadRecordError) return { ok: false, error };
      throw error;
    }
  },
};

/** The replica named by an assignment key's tail (`<instanceId>/<ordinal>`). */
export function replicaFromKeyTail(tail: readonly string[]): ReplicaRef | undefined {
  const [instanceId, ordinalText, ...rest] = tail;
  if (!instanceId || !ordinalText || rest.length > 0 || !isKeySegment(instanceId)) return undefined;
  if (!/^(0|[1-9][0-9]{0,8})$/.test(ordinalText)) return undefined;
  return { instanceId, ordinal: Number(ordinalText) };
}

/**
 * The role and upstream an assignment names, as one comparable string; undefined for a
 * replica being seeded (a volume copy in progress is never cut short by a change).
 */
function replicationTarget(record: AssignmentRecord): string | undefined {
  if (record.seed) return undefined;
  const upstream = record.upstream ? endpointText(record.upstream) : '';
  return `${record.role ?? ''} ${upstream}`;
}

function parseReplicaKey(key: string): ReplicaRef | undefined {
  const [instanceId, ordinal] = key.split('/');
  return instanceId && ordinal ? { instanceId, ordinal: Number(ordinal) } : undefined;
}

/**
 * Watches this node's assignments and decides *when* replicas are reconciled: on every
 * change of an assignment, and in a periodic full pass that also covers replicas known only
 * from Docker (containers that lost their assignment) or from our own statuses.
 */
export class AssignmentWatcher {
  readonly #deps: AssignmentWatcherDeps;
  readonly #mirror: PrefixMirror<AssignmentRead>;
  readonly #queue: ReplicaQueue;
  /** What each replica was last assigned to follow (replicationTarget), by replica id. */
  readonly #targets = new Map<string, string>();
  /**
   * Assignments this agent deleted itself, by key, with the version deleted: until the
   * watch reports the delete, a pass must not act on the mirror's stale copy (a second
   * removal would take a superseded volume for the one in use).
   */
  readonly #deletedHere = new Map<string, string>();
  #reconcile: ReconcileReplica | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<void> | undefined;
  #stopped = false;

  constructor(deps: AssignmentWatcherDeps) {
    this.#deps = deps;
    const prefix = deps.keys.nodeAssignments(deps.identity.node);
    this.#mirror = new PrefixMirror(deps.client, assignmentReadCodec, prefix, deps.log);
    this.#queue = new ReplicaQueue(async (key, signal) => {
      const ref = parseReplicaKey(key);
      if (ref && this.#reconcile) await this.#reconcile(ref, signal);
    }, deps.log);
  }

  /** The assignment at the replica's key as last seen, malformed ones included. */
  assignmentOf(ref: ReplicaRef): Versioned<AssignmentRead> | undefined {
    const key = this.#keyOf(ref);
    const read = this.#mirror.items.get(key);
    const deleted = this.#deletedHere.get(key);
    if (deleted === undefined) return read;
    if (read?.modRevision === deleted) return undefined;
    // The watch caught up: the delete arrived, or a newer assignment replaced it.
    this.#deletedHere.delete(key);
    return read;
  }

  /** This agent deleted the replica's assignment at version `modRevision` (a removal's end). */
  deletedHere(ref: ReplicaRef, modRevision: string): void {
    this.#deletedHere.set(this.#keyOf(ref), modRevision);
  }

  #keyOf(ref: ReplicaRef): string {
    return this.#deps.keys.assignment(this.#deps.identity.node, ref.instanceId, ref.ordinal);
  }

  retryLater(ref: ReplicaRef, ms: number): void {
    this.#queue.scheduleAfter(replicaId(ref.instanceId, ref.ordinal), ms);
  }

  /** Queues every known replica now, without waiting for the next periodic pass. */
  reconcileAll(): void {
    if (this.#stopped) return;
    this.#fullPass().catch((error: unknown) => this.#deps.log.warn({ err: error }, 'reconcile pass failed'));
  }

  /** Lists the assignments (first sync), then runs the first full pass and keeps watching. */
  async start(reconcile: ReconcileReplica): Promise<void> {
    this.#reconcile = reconcile;
    this.#mirror.on('change', (changes) => this.#onChanges(changes));
    await this.#mirror.start();
    this.#runPass();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#mirror.close();
    await this.#pass;
    await this.#queue.close();
  }

  #onChanges(changes: MirrorChange<AssignmentRead>[]): void {
    for (const change of changes) {
      // The watch caught up with the key: whatever it says now is newer than our delete.
      this.#deletedHere.delete(change.key);
      const ref = replicaFromKeyTail(Keyspace.tail(this.#mirror.prefix, change.key));
      if (!ref) {
        this.#deps.log.warn({ key: change.key }, 'ignoring an assignment key that names no replica');
        continue;
      }
      const read = change.current?.value;
      const record = read?.ok ? read.record : undefined;
      const key = replicaId(ref.instanceId, ref.ordinal);
      const target = record ? replicationTarget(record) : undefined;
      const retargeted = target !== this.#targets.get(key) && this.#targets.has(key);
      if (target === undefined) this.#targets.delete(key);
      else this.#targets.set(key, target);
      // Anything but "keep running" may cut short a readiness wait in progress, and so may a
      // new upstream: the replica may never be ready while it follows the old one (rule 4g).
      this.#queue.schedule(key, { interrupt: record?.desired !== 'running' || retargeted });
    }
  }

  #runPass(): void {
    if (this.#stopped) return;
    this.#pass = this.#fullPass()
      .catch((error: unknown) => this.#deps.log.warn({ err: error }, 'reconcile pass failed'))
      .finally(() => {
        if (this.#stopped) return;
        this.#timer = setTimeout(() => this.#runPass(), this.#deps.reconcileIntervalMs);
      });
  }

  async #fullPass(): Promise<void> {
    const { docker, statuses, identity } = this.#deps;
    await statuses.flushDirty();
    const replicas = new Map<string, ReplicaRef>();
    const add = (ref: ReplicaRef | undefined) => {
      if (ref) replicas.set(replicaId(ref.instanceId, ref.ordinal), ref);
    };
    for (const key of this.#mirror.items.keys()) add(replicaFromKeyTail(Keyspace.tail(this.#mirror.prefix, key)));
    for (const ref of statuses.known()) add(ref);
    try {
      for (const container of await docker.listContainers(nodeLabels(identity)))
        add(replicaFromLabels(container.labels));
    } catch (error) {
      this.#deps.log.warn({ err: error }, 'cannot list containers; checking assigned replicas only');
    }
    for (const key of replicas.keys()) this.#queue.schedule(key);
  }
}
