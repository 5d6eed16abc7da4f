import { lstat, realpath, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import {
  backupVolumeSource,
  type Catalog,
  type CatalogEntry,
  type Logger,
  type ServiceBackupRecipe,
  type TransferFigures,
} from '@service-foundry/core';
import { copyVolume, type ProgressListener } from '@service-foundry/volumes';
import { labelKeys, replicaResourceName } from '../container-spec.js';
import type { ContainerState, DockerRuntime } from '../docker-runtime.js';
import { lastLines } from '../docker-streams.js';
import { fillCommand } from '../replication-spec.js';
import { transferFigures } from '../transfer-figures.js';
import type { BackupStore } from './backup-store.js';

/** Why a backup failed, in words fit for the record and `sf backups` (never a secret). */
export class BackupFailure extends Error {}

export interface BackupJobDeps {
  docker: DockerRuntime;
  catalog: Catalog;
  store: BackupStore;
  node: string;
  clusterId: string;
  hookTimeoutMs: number;
  fsync: boolean;
  log: Logger;
}

/** The replica a backup is taken from. */
export interface BackupSource {
  instanceId: string;
  backupId: string;
  serviceName: string;
  ordinal: number;
}

function backupRecipe(deps: BackupJobDeps, source: BackupSource): { entry: CatalogEntry; recipe: ServiceBackupRecipe } {
  const entry = deps.catalog.byServiceName(source.serviceName);
  if (!entry)
    throw new BackupFailure(`service ${source.serviceName} is not in the catalog of the agent on ${deps.node}`);
  // Stopping the replica to copy it is not this module's call: the reconciler owns the container's lifecycle.
  if (!entry.backup) throw new BackupFailure(`service ${source.serviceName} declares no backup hook`);
  return { entry, recipe: entry.backup };
}

/** The replica's container, when it is the one this agent made for that replica. */
type ReplicaLookup = Pick<BackupJobDeps, 'docker' | 'node' | 'clusterId'>;

async function replicaContainer(deps: ReplicaLookup, source: BackupSource): Promise<ContainerState | undefined> {
  const container = await deps.docker.inspectContainer(replicaResourceName(deps.node, source));
  if (!container) return undefined;
  const labels = container.labels;
  const ours =
    labels[labelKeys.cluster] === deps.clusterId &&
    labels[labelKeys.node] === deps.node &&
    labels[labelKeys.instance] === source.instanceId &&
    labels[labelKeys.ordinal] === String(source.ordinal);
  return ours ? container : undefined;
}

/** Host directory of the volume the container mounts at `volumePath`. */
async function volumeMountpoint(deps: ReplicaLookup, container: ContainerState, volumePath: string, ordinal: number) {
  const volume = container.volumeMounts[volumePath];
  if (!volume) throw new BackupFailure(`replica ${ordinal} has no volume mounted at ${volumePath} on ${deps.node}`);
  const info = await deps.docker.inspectVolume(volume);
  if (!info) throw new BackupFailure(`volume ${volume} of replica ${ordinal} is gone from ${deps.node}`);
  return info.mountpoint;
}

/**
 * The folder `prepare` wrote, as a real path: it must be a directory (not a symlink, which
 * could point anywhere on the host) directly inside the volume.
 */
async function preparedTree(mountpoint: string, dir: string): Promise<string> {
  const path = join(mountpoint, dir);
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(path);
  } catch {
    throw new BackupFailure(`the backup hook exited 0 but wrote no ${dir} folder into the volume`);
  }
  if (stats.isSymbolicLink()) throw new BackupFailure(`the backup hook left ${dir} as a symlink, not a folder`);
  if (!stats.isDirectory()) throw new BackupFailure(`the backup hook left ${dir} as a file, not a folder`);
  const real = await realpath(path);
  if (real !== join(await realpath(mountpoint), dir)) throw new BackupFailure(`${dir} resolves outside the volume`);
  return real;
}

async function runPrepare(deps: BackupJobDeps, containerId: string, argv: string[]): Promise<void> {
  const command = argv.join(' ');
  const result = await deps.docker.exec(containerId, argv, deps.hookTimeoutMs);
  if (result.exitCode === 0) return;
  // Docker cannot kill an exec: a command past its deadline may still be running; its folder is removed anyway.
  if (result.exitCode === null) {
    throw new BackupFailure(`backup hook \`${command}\` did not finish within ${deps.hookTimeoutMs} ms`);
  }
  const said = lastLines(result.stderr, 3) || lastLines(result.stdout, 3);
  throw new BackupFailure(`backup hook \`${command}\` exited with code ${result.exitCode}${said ? `: ${said}` : ''}`);
}

/**
 * Takes one backup: the service's `prepare` hook writes a consistent copy into `dir` inside
 * the replica's volume, that folder is copied (verified, atomically) into the store, and
 * the folder is removed again, whether the copy worked or not. The caller completes or
 * discards the store entry.
 */
export async function takeBackup(
  deps: BackupJobDeps,
  source: BackupSource,
  onProgress: ProgressListener,
): Promise<TransferFigures> {
  const { entry, recipe } = backupRecipe(deps, source);
  const container = await replicaContainer(deps, source);
  if (!container?.running) throw new BackupFailure(`replica ${source.ordinal} is not running on ${deps.node}`);
  const volumePath = entry.runtime.volumePath;
  const mountpoint = await volumeMountpoint(deps, container, volumePath, source.ordinal);
  // The catalog schema keeps `dir` to one plain name; joined to the mountpoint it stays inside.
  const preparedPath = join(mountpoint, recipe.dir);
  await rm(preparedPath, { recursive: true, force: true });
  try {
    await runPrepare(deps, container.id, fillCommand(recipe.prepare, { path: posix.join(volumePath, recipe.dir) }));
    const from = await preparedTree(mountpoint, recipe.dir);
    const into = await deps.store.destination(source.instanceId, source.backupId);
    const result = await copyVolume({
      from,
      into,
      name: backupVolumeSource(source.instanceId, source.backupId),
      fsync: deps.fsync,
      onProgress,
    });
    return transferFigures(result);
  } finally {
    // rm never follows a symlink left at that path: it unlinks the link.
    await rm(preparedPath, { recursive: true, force: true }).catch((error: unknown) =>
      deps.log.warn(
        { err: error, instanceId: source.instanceId, backupId: source.backupId },
        'cannot remove the prepared copy',
      ),
    );
  }
}

/**
 * After an agent restart: removes the folder an interrupted `prepare` may have left in the
 * replica's volume. Best effort; nothing happens when the container or recipe is gone.
 */
export async function removeLeftoverPrepared(deps: Omit<BackupJobDeps, 'store'>, source: BackupSource): Promise<void> {
  const recipe = deps.catalog.byServiceName(source.serviceName);
  if (!recipe?.backup) return;
  const container = await replicaContainer(deps, source);
  const volume = container?.volumeMounts[recipe.runtime.volumePath];
  const info = volume ? await deps.docker.inspectVolume(volume) : undefined;
  if (info) await rm(join(info.mountpoint, recipe.backup.dir), { recursive: true, force: true });
}
