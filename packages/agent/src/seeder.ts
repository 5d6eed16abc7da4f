import {
  type AssignmentRecord,
  type CatalogEntry,
  DockerError,
  type Etcd3,
  type EventLog,
  json,
  type Keyspace,
  type Logger,
  nodeCodec,
  readRecord,
  replicaId,
  type SeedRecord,
  type TransferStatusRecord,
} from '@service-foundry/core';
import { pullSnapshot, type TransferProgress } from '@service-foundry/volumes';
import type { AgentVolumeConfig } from './config.js';
import { labelKeys, type NodeIdentity, type ReplicaRef, replicaLabels, replicaResourceName } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { NoVolumeServerError, SeedOverRunningReplicaError, SourceNodeUnavailableError } from './errors.js';
import { currentReplicaVolume } from './replica-volumes.js';
import { formatBytes, transferFigures } from './transfer-figures.js';
import { peerTransferOptions } from './volume-service.js';

/** Progress is written to etcd at most this often (the CLI polls it for its bar). */
const progressIntervalMs = 500;
/** A failed pull of the same round is tried this many times, this far apart, then left failed. */
const attemptsPerRound = 3;
const retryMs = 3000;

export interface SeederDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  /** Undefined when the agent has no volume server configured: it cannot receive volumes. */
  volumes: AgentVolumeConfig | undefined;
  leaseId: () => Promise<string>;
  retryLater: (ref: ReplicaRef, ms: number) => void;
  /** Told of every complete copy received (metrics). @default undefined */
  onReceived?: (bytes: number, wireBytes: number) => void;
}

interface SeedMemory {
  source: string;
  /** Highest round copied completely. */
  round: number;
  /** The last complete copy from this source (volume shipping keeps taking them). */
  copiedAt?: number;
  snapshots: number;
  attempts: number;
  attemptRound: number;
  last?: TransferStatusRecord;
  lastLease?: string;
}

type SeededAssignment = AssignmentRecord & { seed: SeedRecord };

/**
 * Fills a replica's volume from another agent before the replica runs here (relocation,
 * restore). Each `seed.round` is one pull: the first copies everything, later rounds only
 * what changed (the library offers the copy already here as the base). Progress and the
 * figures of each round go to `transfers/<id>/<ordinal>/<node>`, never to the replica's
 * status key: the replica may be running on the source node meanwhile, and that node owns it.
 */
export class Seeder {
  readonly #deps: SeederDeps;
  readonly #memory = new Map<string, SeedMemory>();

  constructor(deps: SeederDeps) {
    this.#deps = deps;
  }

  async seed(
    ref: ReplicaRef,
    assignment: SeededAssignment,
    entry: CatalogEntry,
    container: ContainerState | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const { seed } = assignment;
    const source = `${seed.from.node}/${seed.from.volume}`;
    const id = replicaId(ref.instanceId, ref.ordinal);
    let memory = this.#memory.get(id);
    if (!memory || memory.source !== source) {
      memory = { source, round: 0, attempts: 0, attemptRound: 0, snapshots: 0 };
      this.#memory.set(id, memory);
    }
    const periodic = seed.everySeconds !== undefined;
    if (memory.round >= seed.round) {
      const dueInMs = periodic ? (memory.copiedAt ?? 0) + (seed.everySeconds ?? 0) * 1000 - Date.now() : Number.NaN;
      if (!(dueInMs <= 0)) {
        if (dueInMs > 0) this.#deps.retryLater(ref, dueInMs);
        // Done already; the record goes again only when the lease changed (it vanished with the old one).
        if (memory.last && memory.lastLease !== (await this.#deps.leaseId()))
          await this.#write(ref, memory, memory.last);
        return;
      }
      // Volume shipping: the next snapshot is due; it is a delta against the last one.
      memory.attempts = 0;
    }
    if (!periodic && memory.attemptRound === seed.round && memory.attempts >= attemptsPerRound) return;
    if (memory.attemptRound !== seed.round) {
      memory.attemptRound = seed.round;
      memory.attempts = 0;
    }
    memory.attempts += 1;
    const base = { instanceId: ref.instanceId, ordinal: ref.ordinal, node: this.#deps.identity.node, from: seed.from };
    const say = (state: TransferStatusRecord['state'], message: string, extra: Partial<TransferStatusRecord> = {}) =>
      this.#write(ref, memory, {
        ...base,
        round: seed.round,
        state,
        message,
        snapshots: memory.snapshots,
        ...(memory.copiedAt !== undefined ? { copiedAt: new Date(memory.copiedAt).toISOString() } : {}),
        ...(memory.last?.result ? { result: memory.last.result } : {}),
        ...extra,
        updatedAt: now(),
      });
    let announced: Promise<void> = Promise.resolve();
    try {
      this.#checkCanReceive(ref, container);
      // Both wait on a peer (etcd, Docker): asked at once, a final round waits for one.
      const [url, into] = await Promise.all([
        volumeUrlOf(this.#deps.client, this.#deps.keys, seed.from.node),
        this.#targetDirectory(ref, assignment, entry),
      ]);
      // Written while the pull starts, not before: in a relocation's final round this is downtime.
      announced = say('copying', `round ${seed.round}: copying from ${seed.from.node}`);
      announced.catch(() => undefined);
      let lastWrite = 0;
      const result = await pullSnapshot({
        url,
        ...peerTransferOptions(this.#deps.volumes as AgentVolumeConfig),
        name: seed.from.volume,
        into,
        signal,
        onProgress: (progress: TransferProgress) => {
          if (progress.done || Date.now() - lastWrite < progressIntervalMs) return;
          lastWrite = Date.now();
          void say('copying', `round ${seed.round}: copying from ${seed.from.node}`, {
            progress: {
              bytes: progress.bytes,
              files: progress.files,
              elapsedMs: progress.elapsedMs,
              mbPerSecond: progress.mbPerSecond,
              ...(progress.plannedBytes !== undefined ? { plannedBytes: progress.plannedBytes } : {}),
              ...(progress.plannedFiles !== undefined ? { plannedFiles: progress.plannedFiles } : {}),
            },
          });
        },
      });
      await announced;
      const figures = transferFigures(result);
      this.#deps.onReceived?.(result.bytes, result.wireBytes);
      const summary =
        `${result.mode} copy of ${seed.from.volume} from ${seed.from.node}: ${formatBytes(result.bytes)}, ` +
        `${result.files} files, ${result.deleted} deleted, ${(result.durationMs / 1000).toFixed(2)} s, ${result.mbPerSecond} MB/s`;
      memory.round = seed.round;
      memory.copiedAt = Date.now();
      memory.snapshots += 1;
      await say('copied', `round ${seed.round}: ${summary}`, { result: figures });
      if (periodic) this.#deps.retryLater(ref, (seed.everySeconds ?? 0) * 1000);
      this.#deps.log.info(
        { instanceId: ref.instanceId, ordinal: ref.ordinal, round: seed.round, figures },
        'volume seeded',
      );
      // Volume shipping copies every few seconds: its first snapshot is an event, the rest are in the record.
      if (!periodic || memory.snapshots === 1) {
        await this.#deps.events.record('volume-seeded', `replica ${ref.ordinal}, round ${seed.round}: ${summary}`, {
          instanceId: ref.instanceId,
          node: this.#deps.identity.node,
        });
      }
    } catch (error) {
      if (signal.aborted) return;
      // The `copying` record lands first, so `failed` is the one that stays.
      await announced.catch(() => undefined);
      const message = `round ${seed.round}, attempt ${memory.attempts} of ${attemptsPerRound}: ${(error as Error).message}`;
      this.#deps.log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, err: error }, 'seeding failed');
      // Volume shipping never gives up: the next snapshot is simply tried again.
      const willRetry = periodic || memory.attempts < attemptsPerRound;
      await say('failed', message, { willRetry });
      if (willRetry) this.#deps.retryLater(ref, retryMs);
    }
  }

  /** The replica no longer seeds here: its transfer record goes (the figures live on in events). */
  async forget(ref: ReplicaRef): Promise<void> {
    const id = replicaId(ref.instanceId, ref.ordinal);
    const memory = this.#memory.get(id);
    if (!memory) return;
    this.#memory.delete(id);
    await this.#deps.client
      .delete()
      .key(this.#deps.keys.transfer(ref.instanceId, ref.ordinal, this.#deps.identity.node));
  }

  /** Refuses to copy without a volume server, or over a replica that runs here. */
  #checkCanReceive(ref: ReplicaRef, container: ContainerState | undefined): void {
    if (!this.#deps.volumes) throw new NoVolumeServerError(this.#deps.identity.node);
    if (container?.running) throw new SeedOverRunningReplicaError(ref.ordinal);
  }

  /** The volume the replica's container will mount here, created (with its labels) when missing. */
  async #targetDirectory(ref: ReplicaRef, assignment: SeededAssignment, entry: CatalogEntry): Promise<string> {
    const { docker, identity } = this.#deps;
    const generation = assignment.generation ?? 0;
    // Natively replicated services name volumes by generation; the others have one volume.
    const native = entry.replication !== undefined && !entry.plans[assignment.planName]?.volumeShipping;
    const name = native
      ? await currentReplicaVolume(docker, identity, ref, generation)
      : replicaResourceName(identity.node, ref);
    const found = await docker.inspectVolume(name);
    if (found) return found.mountpoint;
    await docker.ensureVolume(name, {
      ...replicaLabels(identity, assignment),
      ...(native ? { [labelKeys.generation]: String(generation) } : {}),
    });
    const info = await docker.inspectVolume(name);
    if (!info) throw new DockerError(`volume ${name} vanished right after it was created`);
    return info.mountpoint;
  }

  async #write(ref: ReplicaRef, memory: SeedMemory, record: TransferStatusRecord): Promise<void> {
    const lease = await this.#deps.leaseId();
    memory.last = record;
    memory.lastLease = lease;
    const key = this.#deps.keys.transfer(ref.instanceId, ref.ordinal, this.#deps.identity.node);
    await this.#deps.client.put(key).value(json(record)).lease(lease).exec();
  }
}

function now(): string {
  return new Date().toISOString();
}

/** The URL a node announces for its volume server. */
export async function volumeUrlOf(client: Etcd3, keys: Keyspace, node: string): Promise<string> {
  const record = await readRecord(client, nodeCodec, keys.node(node));
  if (!record) throw new SourceNodeUnavailableError(node, 'not alive');
  if (record.value.volumeUrl === undefined) throw new SourceNodeUnavailableError(node, 'serves no volumes');
  return record.value.volumeUrl;
}
