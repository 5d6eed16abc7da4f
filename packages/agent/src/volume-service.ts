import { lstat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type EventLog, type Logger, ProcessError, parseServedVolume, type Versioned } from '@service-foundry/core';
import {
  createVolumeServer,
  type PeerCallHandler,
  type PeerOptions,
  readVolumeTls,
  serverTlsOptions,
  type TransferEvent,
} from '@service-foundry/volumes';
import type { AssignmentRead } from './assignment-watcher.js';
import type { AgentVolumeConfig } from './config.js';
import { labelKeys, type NodeIdentity, type ReplicaRef, replicaResourceName } from './container-spec.js';
import type { ContainerSummary, DockerRuntime } from './docker-runtime.js';
import { currentReplicaVolume } from './replica-volumes.js';
import { formatBytes } from './transfer-figures.js';

const routineEventIntervalMs = 60_000;

/**
 * A volume server accepts only clients whose certificate is named `volumePeerPrefix` +
 * node: another certificate of the cluster CA (an etcd client's) gets no further than the
 * `403`, even with the cluster secret (only the liveness path answers it).
 */
const volumePeerPattern = /^sf-volumes\.[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** What a pull from another node's volume server needs from this node's config: secret, fsync, TLS. */
export function peerTransferOptions(config: AgentVolumeConfig): Pick<PeerOptions, 'secret' | 'fsync' | 'tls'> {
  return { secret: config.secret, fsync: config.fsync, tls: config.tls };
}

export interface VolumeServiceDeps {
  config: AgentVolumeConfig;
  docker: DockerRuntime;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  /** The assignment of a replica as last seen by the watch (for its generation). */
  assignmentOf: (ref: ReplicaRef) => Versioned<AssignmentRead> | undefined;
  /** The directory of a completed backup in this node's store, or undefined. */
  backupDir: (instanceId: string, backupId: string) => Promise<string | undefined>;
  /** The catalog's `flush` command of a service, if it has one. */
  flushCommand: (serviceName: string) => readonly string[] | undefined;
  /** Deadline of the flush command. */
  commandTimeoutMs: number;
  /** Told of every copy served (metrics). @default undefined */
  onSent?: (bytes: number, wireBytes: number) => void;
  /** Calls other agents may make (the failsafe's). @default none */
  calls?: Readonly<Record<string, PeerCallHandler>>;
}

/**
 * The node's volume server (docs/volumes.md): other agents pull the volumes of this node's
 * replicas (`replica.<id>.<n>`) and the backups in its store (`backup.<id>.<backup>`),
 * over HTTPS with the node's volume certificate, from clients presenting theirs (mutual
 * TLS), authenticated with the cluster secret. It serves, never receives: a peer cannot
 * write into a volume here (every copy onto this node is a pull this agent decided to make).
 */
export class VolumeService {
  readonly #deps: VolumeServiceDeps;
  readonly #lastEventAt = new Map<string, number>();
  /** Mountpoints of volumes whose labels say this agent owns them (#ownedMountpoint). */
  readonly #ownedVolumes = new Map<string, string>();
  #server: Server | undefined;

  constructor(deps: VolumeServiceDeps) {
    this.#deps = deps;
  }

  /** Listens on the node address; resolves to the URL other agents use. */
  async start(): Promise<string> {
    const { config, identity, log } = this.#deps;
    const volumes = createVolumeServer({
      secret: config.secret,
      fsync: config.fsync,
      clientNamePattern: volumePeerPattern,
      resolveVolumeDir: (name) => this.resolve(name),
      onTransfer: (event) => this.#report(event),
      ...(this.#deps.calls ? { calls: this.#deps.calls } : {}),
    });
    const server = createServer(serverTlsOptions(await readVolumeTls(config.tls)));
    volumes.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, identity.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const { port } = server.address() as AddressInfo;
    const url = `https://${identity.address}:${port}`;
    log.info({ url }, 'volume server listening');
    return url;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The host directory behind a served name, or undefined (→ 404) when this node has none. */
  async resolve(name: string): Promise<string | undefined> {
    const served = parseServedVolume(name);
    if (!served) return undefined;
    if (served.kind === 'backup') return this.#deps.backupDir(served.instanceId, served.backupId);
    const ref = { instanceId: served.instanceId, ordinal: served.ordinal };
    const { docker, identity } = this.#deps;
    // One list answers both questions: which volume, and whether a flush is due. A list, not
    // an inspect: a relocation's final round asks right after the container stopped, when
    // an inspect waits for Docker's clean-up of it (~100 ms), and the round waits on this.
    const containerName = replicaResourceName(identity.node, ref);
    const listed = await docker.listContainers({
      [labelKeys.cluster]: identity.clusterId,
      [labelKeys.instance]: ref.instanceId,
    });
    const container = listed.find((c) => c.name === containerName);
    const volume = await this.#replicaVolume(ref, container);
    if (!volume) return undefined;
    const [mountpoint] = await Promise.all([this.#ownedMountpoint(volume), this.#flush(ref, container)]);
    return mountpoint;
  }

  /**
   * The directory of a volume this agent owns (its cluster and node labels): a name that
   * merely looks right is not enough. Labels never change, so a volume checked once is
   * known while its directory exists: an inspect right after its container stopped waits
   * for Docker to release the volume (~100 ms of a relocation's final round).
   */
  async #ownedMountpoint(volume: string): Promise<string | undefined> {
    const known = this.#ownedVolumes.get(volume);
    if (known !== undefined && (await lstat(known).catch(() => undefined))?.isDirectory()) return known;
    this.#ownedVolumes.delete(volume);
    const { docker, identity } = this.#deps;
    const info = await docker.inspectVolume(volume);
    if (!info || info.labels[labelKeys.cluster] !== identity.clusterId) return undefined;
    if (info.labels[labelKeys.node] !== identity.node) return undefined;
    this.#ownedVolumes.set(volume, info.mountpoint);
    return info.mountpoint;
  }

  /** The volume a replica's container uses (or would use), when it exists on this node. */
  async #replicaVolume(ref: ReplicaRef, container: ContainerSummary | undefined): Promise<string | undefined> {
    const { docker, identity } = this.#deps;
    const mounted = container && Object.values(container.volumeMounts)[0];
    if (mounted) return mounted;
    const read = this.#deps.assignmentOf(ref)?.value;
    const generation = read?.ok ? (read.record.generation ?? 0) : 0;
    const name = await currentReplicaVolume(docker, identity, ref, generation);
    return (await docker.volumeExists(name)) ? name : undefined;
  }

  /**
   * A running service writes what it holds in memory to its volume before the copy is
   * read (catalog `flush`), so the pre-copy is close to what a stop would leave. A failed
   * flush only costs a larger final delta: it is logged, the copy goes ahead.
   */
  async #flush(ref: ReplicaRef, container: ContainerSummary | undefined): Promise<void> {
    const { docker, log } = this.#deps;
    if (!container?.running) return;
    // Being stopped (a relocation's final round): its stop flushes, and Docker may still
    // list it as running after its process exited, where an exec would wait (~100 ms).
    const read = this.#deps.assignmentOf(ref)?.value;
    if (read?.ok && read.record.desired !== 'running') return;
    const command = this.#deps.flushCommand(container.labels[labelKeys.service] ?? '');
    if (!command) return;
    const started = Date.now();
    try {
      const result = await docker.exec(container.id, [...command], this.#deps.commandTimeoutMs);
      if (result.exitCode !== 0) {
        throw new ProcessError(`exit code ${result.exitCode}: ${result.stderr.trim().slice(-300)}`, result.exitCode);
      }
      log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal, ms: Date.now() - started }, 'flushed before a copy');
    } catch (error) {
      log.warn({ err: error, instanceId: ref.instanceId, ordinal: ref.ordinal }, 'flush before a copy failed');
    }
  }

  #report(event: TransferEvent): void {
    const { events, log, identity } = this.#deps;
    const served = parseServedVolume(event.volume);
    if (event.ok) this.#deps.onSent?.(event.bytes, event.wireBytes);
    const what = `${event.direction} ${event.mode ?? ''} snapshot of ${event.volume}`.replace('  ', ' ');
    const message = event.ok
      ? `${what} (${event.peer}): ${formatBytes(event.bytes)} in ${event.files} files, ${(event.durationMs / 1000).toFixed(1)} s, ${event.mbPerSecond} MB/s`
      : `${what} (${event.peer}) failed: ${event.error ?? 'unknown error'}`;
    // Standbys of volume shipping pull every few seconds: their deltas are an event at most once a minute.
    const last = this.#lastEventAt.get(event.volume) ?? 0;
    const routine = event.ok && event.mode === 'delta' && Date.now() - last < routineEventIntervalMs;
    log[event.ok ? (routine ? 'debug' : 'info') : 'warn']({ transfer: event }, 'volume transfer');
    if (routine) return;
    this.#lastEventAt.set(event.volume, Date.now());
    void events
      .record('volume-transfer', message, {
        node: identity.node,
        ...(served ? { instanceId: served.instanceId } : {}),
      })
      .catch(() => undefined);
  }
}
