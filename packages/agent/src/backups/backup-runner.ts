import {
  type BackupRecord,
  backupCodec,
  type Catalog,
  type Etcd3,
  type EventLog,
  isBackupId,
  isKeySegment,
  json,
  Keyspace,
  type Logger,
  PrefixMirror,
  type PrimaryRecord,
  primaryCodec,
  type TransferProgressRecord,
  type Versioned,
} from '@service-foundry/core';
import type { TransferProgress } from '@service-foundry/volumes';
import type { DockerRuntime } from '../docker-runtime.js';
import {
  BackupFailure,
  type BackupJobDeps,
  type BackupSource,
  removeLeftoverPrepared,
  takeBackup,
} from './backup-job.js';
import type { BackupStore } from './backup-store.js';
import { OwnBackupRecord, withoutProgress } from './own-backup-record.js';

export interface BackupRunnerDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  catalog: Catalog;
  /** This node's name. */
  node: string;
  clusterId: string;
  events: EventLog;
  log: Logger;
  /**
   * The node's backup store; undefined when the agent runs without `volumes` in its
   * config: backups of its primaries then fail with a message that says so.
   */
  store: BackupStore | undefined;
  /** Deadline of the service's `prepare` hook. */
  hookTimeoutMs: number;
  /** fsync the copy before it counts as complete. */
  fsync: boolean;
  /** Requested backups are looked for this often besides on every change. @default 3000 */
  rescanIntervalMs?: number;
}

/** Progress is written to etcd at most this often. */
const progressIntervalMs = 500;
/** Failure messages stay short enough for a record and a terminal line. */
const maxMessageLength = 600;

function progressRecord(progress: TransferProgress): TransferProgressRecord {
  const record: TransferProgressRecord = {
    bytes: progress.bytes,
    files: progress.files,
    elapsedMs: progress.elapsedMs,
    mbPerSecond: progress.mbPerSecond,
  };
  if (progress.plannedBytes !== undefined) record.plannedBytes = progress.plannedBytes;
  if (progress.plannedFiles !== undefined) record.plannedFiles = progress.plannedFiles;
  return record;
}

function failureMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > maxMessageLength ? `${text.slice(0, maxMessageLength - 1)}…` : text;
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * Takes the backups of the instances whose primary runs on this node (issue 5).
 *
 * It mirrors `backups/` and `primary/`; on every change and every `rescanIntervalMs` it
 * takes the oldest `requested` backup whose primary is on this node. The claim is one etcd
 * transaction comparing the backup's and the primary's mod revisions, so two agents never
 * take the same backup, and none takes it off a replica that stopped being primary.
 * One backup at a time: the others stay `requested` until this agent is free.
 *
 * On start, records that still say `running` on this node are from an agent that died
 * mid-backup: they are marked failed, and what they left in the store and the volume is
 * removed. `stop()` takes no new backup and waits for the one under way to finish (a
 * copy cannot be cut cleanly halfway; it is bounded by the volume's size).
 */
export class BackupRunner {
  readonly #deps: BackupRunnerDeps;
  readonly #log: Logger;
  readonly #backups: PrefixMirror<BackupRecord>;
  readonly #primaries: PrefixMirror<PrimaryRecord>;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #working: Promise<void> | undefined;
  #again = false;

  constructor(deps: BackupRunnerDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ component: 'backups' });
    this.#backups = new PrefixMirror(deps.client, backupCodec, deps.keys.backups(), this.#log);
    this.#primaries = new PrefixMirror(deps.client, primaryCodec, deps.keys.primaries(), this.#log);
  }

  async start(): Promise<void> {
    try {
      await this.#primaries.start();
      await this.#backups.start();
      await this.#failInterrupted();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#backups.on('change', () => this.#kick());
    this.#primaries.on('change', () => this.#kick());
    this.#schedule();
    this.#kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#primaries.close();
    await this.#backups.close();
    await this.#working;
  }

  /** Resolves when the runner is neither looking for nor taking a backup (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#working) await this.#working;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#kick();
      this.#schedule();
    }, this.#deps.rescanIntervalMs ?? 3000);
    this.#timer.unref();
  }

  /** Starts a pass unless one runs; a change during a pass causes another pass after it. */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#working) {
      this.#again = true;
      return;
    }
    this.#working = this.#drain()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'backup pass failed; retrying on the next change'))
      .finally(() => {
        this.#working = undefined;
        if (this.#again) {
          this.#again = false;
          this.#kick();
        }
      });
  }

  async #drain(): Promise<void> {
    while (!this.#stopped) {
      const next = this.#nextRequested();
      if (!next) return;
      const own = await this.#claim(next.backup, next.primary);
      // Lost the race or the view was stale: the mirrors are about to change and kick again.
      if (!own) return;
      await this.#take(own);
    }
  }

  /**
   * Backup keys are `backups/<instanceId>/<backupId>` and agree with the record's own ids;
   * anything else (a record written by hand, a newer format) is left alone.
   */
  #wellFormed(item: Versioned<BackupRecord>): boolean {
    const tail = Keyspace.tail(this.#backups.prefix, item.key);
    const [instanceId, backupId] = tail;
    return (
      tail.length === 2 &&
      instanceId !== undefined &&
      backupId !== undefined &&
      isKeySegment(instanceId) &&
      isBackupId(backupId) &&
      item.value.instanceId === instanceId &&
      item.value.id === backupId
    );
  }

  #nextRequested(): { backup: Versioned<BackupRecord>; primary: Versioned<PrimaryRecord> } | undefined {
    let best: { backup: Versioned<BackupRecord>; primary: Versioned<PrimaryRecord> } | undefined;
    for (const backup of this.#backups.items.values()) {
      if (backup.value.state !== 'requested' || !this.#wellFormed(backup)) continue;
      const primary = this.#primaries.items.get(this.#deps.keys.primary(backup.value.instanceId));
      if (!primary || primary.value.node !== this.#deps.node) continue;
      const order = backup.value.requestedAt.localeCompare(best?.backup.value.requestedAt ?? '');
      if (!best || order < 0 || (order === 0 && backup.key < best.backup.key)) best = { backup, primary };
    }
    return best;
  }

  async #claim(
    backup: Versioned<BackupRecord>,
    primary: Versioned<PrimaryRecord>,
  ): Promise<OwnBackupRecord | undefined> {
    const { client, node } = this.#deps;
    const next: BackupRecord = {
      ...withoutProgress(backup.value),
      state: 'running',
      node,
      ordinal: primary.value.ordinal,
      method: 'hook',
      startedAt: new Date().toISOString(),
      message: `taking the backup on ${node}`,
    };
    const res = await client
      .if(backup.key, 'Mod', '==', backup.modRevision)
      .and(primary.key, 'Mod', '==', primary.modRevision)
      .then(client.put(backup.key).value(json(next)))
      .commit();
    if (!res.succeeded) return undefined;
    return new OwnBackupRecord(client, backup.key, next, res.header.revision);
  }

  async #take(own: OwnBackupRecord): Promise<void> {
    const { store, node, events } = this.#deps;
    const record = own.value;
    const source: BackupSource = {
      instanceId: record.instanceId,
      backupId: record.id,
      serviceName: record.serviceName,
      ordinal: record.ordinal ?? 0,
    };
    const about = { instanceId: source.instanceId, backupId: source.backupId, ordinal: source.ordinal };
    const startedAt = Date.now();
    this.#log.info(about, 'taking backup');
    try {
      if (!store) {
        throw new BackupFailure(`node ${node} has no backup store (its agent runs without volumes in its config)`);
      }
      const figures = await takeBackup({ ...this.#jobDeps(), store }, source, this.#progressWriter(own));
      const completedAt = new Date();
      await store.complete(source.instanceId, source.backupId, {
        figures,
        takenAt: record.startedAt ?? completedAt.toISOString(),
        serviceName: record.serviceName,
        planName: record.planName,
        method: 'hook',
      });
      const seconds = ((completedAt.getTime() - startedAt) / 1000).toFixed(1);
      const written = await own.settle((current) => ({
        ...withoutProgress(current),
        state: 'completed',
        completedAt: completedAt.toISOString(),
        figures,
        message: `completed: ${megabytes(figures.bytes)} MB, ${figures.files} files in ${seconds} s`,
      }));
      if (!written) {
        // Deleted or rewritten while it was taken: nobody will ever look for this copy.
        await store.discard(source.instanceId, source.backupId);
        this.#log.warn(about, 'backup record changed while the backup was taken; copy discarded');
        return;
      }
      this.#log.info({ ...about, ...figures }, 'backup completed');
      await events.record(
        'backup-completed',
        `backup ${source.backupId} of ${record.instanceName}: ${megabytes(figures.bytes)} MB, ${figures.files} files ` +
          `at ${figures.mbPerSecond} MB/s on ${node}`,
        { instanceId: source.instanceId, node },
      );
    } catch (error) {
      await this.#fail(own, source, failureMessage(error), error);
    }
  }

  async #fail(own: OwnBackupRecord, source: BackupSource, reason: string, error: unknown): Promise<void> {
    const { store, node, events } = this.#deps;
    const about = { instanceId: source.instanceId, backupId: source.backupId, ordinal: source.ordinal };
    const expected = error === undefined || error instanceof BackupFailure;
    this.#log.warn(expected ? { ...about, reason } : { ...about, reason, err: error }, 'backup failed');
    await store?.discard(source.instanceId, source.backupId).catch((discardError: unknown) => {
      this.#log.error({ ...about, err: discardError }, 'cannot discard the partial backup');
    });
    const written = await own
      .settle((current) => ({ ...withoutProgress(current), state: 'failed', message: reason }))
      .catch((writeError: unknown) => {
        this.#log.error({ ...about, err: writeError }, 'cannot record the failed backup');
        return false;
      });
    if (!written) return;
    await events.record(
      'backup-failed',
      `backup ${source.backupId} of ${own.value.instanceName} failed on ${node}: ${reason}`,
      {
        instanceId: source.instanceId,
        node,
      },
    );
  }

  /** Writes progress at most every 500 ms, never two writes at once: a report due while one is in flight is skipped. */
  #progressWriter(own: OwnBackupRecord): (progress: TransferProgress) => void {
    let lastAt = 0;
    let busy = false;
    return (progress) => {
      const now = Date.now();
      if (progress.done || busy || own.lost || now - lastAt < progressIntervalMs) return;
      lastAt = now;
      busy = true;
      void own
        .update((current) => ({ ...current, progress: progressRecord(progress) }))
        .catch((error: unknown) => this.#log.debug({ err: error, key: own.key }, 'progress write failed'))
        .finally(() => {
          busy = false;
        });
    };
  }

  #jobDeps(): Omit<BackupJobDeps, 'store'> {
    const { docker, catalog, node, clusterId, hookTimeoutMs, fsync } = this.#deps;
    return { docker, catalog, node, clusterId, hookTimeoutMs, fsync, log: this.#log };
  }

  /** Records that say `running` here at start belong to a previous run of this agent, which died mid-backup. */
  async #failInterrupted(): Promise<void> {
    const { client, node } = this.#deps;
    for (const item of [...this.#backups.items.values()]) {
      if (item.value.state !== 'running' || item.value.node !== node || !this.#wellFormed(item)) continue;
      const own = new OwnBackupRecord(client, item.key, item.value, item.modRevision);
      const source: BackupSource = {
        instanceId: item.value.instanceId,
        backupId: item.value.id,
        serviceName: item.value.serviceName,
        ordinal: item.value.ordinal ?? 0,
      };
      await removeLeftoverPrepared(this.#jobDeps(), source).catch((error: unknown) =>
        this.#log.warn({ err: error, instanceId: source.instanceId }, 'cannot remove a leftover prepared copy'),
      );
      await this.#fail(own, source, `the agent on ${node} restarted during the backup`, undefined);
    }
  }
}
