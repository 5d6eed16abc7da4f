import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import {
  ConflictError,
  InvalidConfigError,
  InvalidInputError,
  isBackupId,
  isKeySegment,
  NotFoundError,
  type TransferFigures,
} from '@service-foundry/core';

/** What a completed backup records about itself beside its copy (`meta.json`). */
export interface BackupMeta {
  figures: TransferFigures;
  /** When the copy was taken (the backup's start). */
  takenAt: string;
  serviceName: string;
  planName: string;
  method: 'hook' | 'stopped';
}

export interface StoredBackup extends BackupMeta {
  instanceId: string;
  backupId: string;
  completedAt: string;
}

/**
 * Where an agent keeps the backups it took. The runner copies a volume tree into
 * `destination()`, then calls `complete()`; until then the backup does not exist for anyone
 * (`completedDir()` and `list()` ignore it), and `discard()` removes what a failed or
 * interrupted attempt left. The volume server serves `backup.<instanceId>.<backupId>` from
 * `completedDir()`, so a restore reads exactly what was completed.
 *
 * This is the seam for object storage: an implementation may stage into a local directory
 * and upload in `complete()`, and download into a local cache in `completedDir()`.
 *
 * Ids are checked (instance ids are key segments, backup ids `isBackupId`): a bad id is an
 * InvalidInputError from the writing methods and "no such backup" from the reading ones,
 * never a path outside the store.
 */
export interface BackupStore {
  /**
   * An absolute, empty directory to copy the volume tree into (its parents exist, mode
   * 0700). Whatever an earlier, unfinished attempt of the same backup left is removed; a
   * completed backup is never overwritten (ConflictError).
   */
  destination(instanceId: string, backupId: string): Promise<string>;
  /** Records the metadata, then the completion marker, each written atomically: from here on it is a backup. */
  complete(instanceId: string, backupId: string, meta: BackupMeta): Promise<void>;
  /** The directory holding the volume tree of a completed backup; undefined when there is none. */
  completedDir(instanceId: string, backupId: string): Promise<string | undefined>;
  /** Removes the backup, complete or not; nothing to remove is fine. */
  discard(instanceId: string, backupId: string): Promise<void>;
  /** The completed backups of an instance, oldest first. */
  list(instanceId: string): Promise<StoredBackup[]>;
}

const metaFile = 'meta.json';
const completeMarker = 'complete';
const volumeDir = 'volume';

function isEnoent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

async function kindOf(path: string): Promise<'directory' | 'file' | 'other' | undefined> {
  try {
    const stats = await lstat(path);
    return stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : 'other';
  } catch (error) {
    if (isEnoent(error)) return undefined;
    throw error;
  }
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface DirectoryBackupStoreOptions {
  /** Absolute folder of the store (config `volumes.backupDir`); created 0700 when missing. */
  root: string;
  /** fsync the metadata and marker (and their folder) before a backup counts as complete. @default true */
  fsync?: boolean;
}

/**
 * A BackupStore in a local folder:
 *
 * ```
 * <root>/<instanceId>/<backupId>/volume/…            the volume tree (copyVolume's target)
 * <root>/<instanceId>/<backupId>/volume.sf-transfer/  copyVolume's work folder (stat cache, manifests)
 * <root>/<instanceId>/<backupId>/meta.json           BackupMeta plus ids
 * <root>/<instanceId>/<backupId>/complete            written last: the backup exists
 * ```
 *
 * Every folder it makes is 0700 (backups hold the service's data, credentials included).
 */
export class DirectoryBackupStore implements BackupStore {
  readonly root: string;
  readonly #fsync: boolean;

  constructor(options: DirectoryBackupStoreOptions) {
    if (typeof options.root !== 'string' || !isAbsolute(options.root)) {
      throw new InvalidConfigError('backup store', [
        `root must be an absolute path; got ${JSON.stringify(options.root)}`,
      ]);
    }
    this.root = resolve(options.root);
    this.#fsync = options.fsync ?? true;
  }

  async destination(instanceId: string, backupId: string): Promise<string> {
    const dir = this.#backupDir(instanceId, backupId);
    if (await this.#isComplete(dir)) throw new ConflictError(`backup ${backupId} of ${instanceId} is already complete`);
    await this.#ensureDirectory(this.root);
    await this.#ensureDirectory(join(this.root, instanceId));
    // A leftover of an interrupted attempt is not a base to build on: start from nothing.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    return join(dir, volumeDir);
  }

  async complete(instanceId: string, backupId: string, meta: BackupMeta): Promise<void> {
    const dir = this.#backupDir(instanceId, backupId);
    if ((await kindOf(join(dir, volumeDir))) !== 'directory') {
      throw new NotFoundError('backup copy', `${instanceId}/${backupId}`);
    }
    const record = { instanceId, backupId, ...meta };
    await this.#writeAtomically(dir, metaFile, `${JSON.stringify(record, null, 2)}\n`);
    await this.#writeAtomically(dir, completeMarker, `${JSON.stringify({ completedAt: new Date().toISOString() })}\n`);
  }

  async completedDir(instanceId: string, backupId: string): Promise<string | undefined> {
    if (!isKeySegment(instanceId) || !isBackupId(backupId)) return undefined;
    const dir = join(this.root, instanceId, backupId);
    // Folders this store made are real ones; anything else (a symlink planted there) is not a backup.
    if ((await kindOf(join(this.root, instanceId))) !== 'directory' || (await kindOf(dir)) !== 'directory') {
      return undefined;
    }
    if (!(await this.#isComplete(dir))) return undefined;
    const tree = join(dir, volumeDir);
    return (await kindOf(tree)) === 'directory' ? tree : undefined;
  }

  async discard(instanceId: string, backupId: string): Promise<void> {
    const dir = this.#backupDir(instanceId, backupId);
    // The marker goes first: a discard cut short leaves a partial backup, never a complete one with holes.
    await rm(join(dir, completeMarker), { force: true });
    await rm(dir, { recursive: true, force: true });
  }

  async list(instanceId: string): Promise<StoredBackup[]> {
    if (!isKeySegment(instanceId)) {
      throw new InvalidInputError(`instance id ${JSON.stringify(instanceId)} is not valid`);
    }
    let names: string[];
    try {
      names = await readdir(join(this.root, instanceId));
    } catch (error) {
      if (isEnoent(error)) return [];
      throw error;
    }
    const found: StoredBackup[] = [];
    for (const backupId of names) {
      if (!isBackupId(backupId) || !(await this.completedDir(instanceId, backupId))) continue;
      const dir = join(this.root, instanceId, backupId);
      try {
        const meta = JSON.parse(await readFile(join(dir, metaFile), 'utf8')) as StoredBackup;
        const marker = JSON.parse(await readFile(join(dir, completeMarker), 'utf8')) as { completedAt?: string };
        found.push({ ...meta, instanceId, backupId, completedAt: marker.completedAt ?? meta.takenAt });
      } catch {
        // Unreadable metadata: not listed, but never deleted behind an operator's back.
      }
    }
    return found.sort((a, b) => a.takenAt.localeCompare(b.takenAt) || a.backupId.localeCompare(b.backupId));
  }

  #backupDir(instanceId: string, backupId: string): string {
    const problems: string[] = [];
    if (!isKeySegment(instanceId)) problems.push(`instance id ${JSON.stringify(instanceId)} is not valid`);
    if (!isBackupId(backupId)) problems.push(`backup id ${JSON.stringify(backupId)} is not valid`);
    if (problems.length > 0) throw new InvalidInputError('invalid backup reference', problems);
    return join(this.root, instanceId, backupId);
  }

  async #isComplete(dir: string): Promise<boolean> {
    return (await kindOf(join(dir, completeMarker))) === 'file';
  }

  /** Creates a folder (0700) or checks that what is there is a real folder, not a symlink out of the store. */
  async #ensureDirectory(path: string): Promise<void> {
    await mkdir(path, { recursive: true, mode: 0o700 });
    if ((await kindOf(path)) !== 'directory') throw new ConflictError(`backup store path ${path} is not a directory`);
  }

  /** Temporary name, fsync, rename, fsync the folder: a crash leaves the old state or the new, never half a file. */
  async #writeAtomically(dir: string, name: string, content: string): Promise<void> {
    const temporary = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      if (this.#fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, join(dir, name));
    if (this.#fsync) await syncPath(dir);
  }
}
