import { createHash } from 'node:crypto';
import { type FileHandle, lchown, link, lstat, lutimes, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import type { Header } from 'tar-stream';
import type { TransferLimits } from './config.js';
import type { EntryContent } from './entry-content.js';
import type { ManifestEntry } from './manifest.js';
import { checkVolumePath, symlinkTargetProblem, tarNameToVolumePath } from './paths.js';
import type { ProgressMeter } from './progress.js';
import { msFromPaxTime, paxKeys } from './protocol.js';
import { clearPath, createExclusive, ensureParents, lstatOrUndefined, parentsAreDirectories } from './safe-fs.js';
import { msFromNs } from './scan.js';

/** Received bytes are written in batches of about this size (fewer syscalls than per network chunk). */
const writeBatchBytes = 1024 * 1024;
/** Files being finished (metadata, fsync, close) in the background at most. */
const maxFinishing = 16;

function refuse(name: string, problem: string): never {
  throw new InvalidInputError(`snapshot entry ${JSON.stringify(name)} refused`, [problem]);
}

function paxNumber(header: Header, key: string, radix: 8 | 10): number | undefined {
  const pax = header.pax as Record<string, string> | null | undefined;
  const text = pax?.[key];
  if (text === undefined) return undefined;
  const pattern = radix === 8 ? /^[0-7]{1,7}$/ : /^[0-9]{1,10}$/;
  if (!pattern.test(text)) refuse(header.name, `malformed pax ${key}`);
  return Number.parseInt(text, radix);
}

/** An entry's metadata: pax records when present (exact), else the ustar fields. */
function metadataOf(header: Header): Pick<ManifestEntry, 'mode' | 'uid' | 'gid' | 'mtimeMs'> {
  const pax = header.pax as Record<string, string> | null | undefined;
  const paxTime = pax?.[paxKeys.mtime];
  const mtimeMs = paxTime === undefined ? header.mtime.getTime() : msFromPaxTime(paxTime);
  if (mtimeMs === undefined || !Number.isSafeInteger(mtimeMs)) refuse(header.name, 'malformed mtime');
  return {
    mode: (paxNumber(header, paxKeys.mode, 8) ?? header.mode) & 0o7777,
    uid: paxNumber(header, paxKeys.uid, 10) ?? header.uid,
    gid: paxNumber(header, paxKeys.gid, 10) ?? header.gid,
    mtimeMs,
  };
}

export interface ApplierOptions {
  staging: string;
  limits: TransferLimits;
  preserveOwnership: boolean;
  fsync: boolean;
  progress: ProgressMeter | undefined;
  /** Hash of a file of the previous copy, for hardlinks to files the stream did not send. */
  baseHash(path: string): string | undefined;
}

/**
 * Applies the volume entries of a snapshot stream to the staging directory, one at a time,
 * after checking each: canonical path inside the volume (paths.ts), no duplicate, a type
 * the volume may hold (file, directory, symlink whose target stays inside, hardlink to a
 * file already in the copy), no setuid files unless allowed, the size and entry budgets.
 * Files are hashed as they are written. What was applied is kept for the trailer's check.
 */
export class EntryApplier {
  readonly received = new Map<string, ManifestEntry>();
  /** Parents created because the stream named a child before (or without) its directory. */
  readonly implicitDirectories = new Set<string>();
  /** Directories of the staging copy checked to be real directories (see ensureParents). */
  readonly #knownDirectories = new Set<string>();
  /** Files whose metadata, fsync and close run while the next entries arrive. */
  readonly #finishing = new Set<Promise<void>>();
  #failure: unknown;
  #bytes = 0;
  readonly #options: ApplierOptions;

  constructor(options: ApplierOptions) {
    this.#options = options;
  }

  async apply(header: Header, content: EntryContent): Promise<void> {
    const { limits } = this.#options;
    const isDirectory = header.type === 'directory';
    const path = tarNameToVolumePath(header.name, isDirectory, limits);
    if (this.received.has(path)) refuse(path, 'duplicate entry');
    if (this.received.size >= limits.maxEntries) refuse(path, `more than ${limits.maxEntries} entries`);
    if (path === '.' && !isDirectory) refuse(path, 'the root must be a directory');
    const meta = metadataOf(header);
    switch (header.type) {
      case 'directory':
        await this.#directory(path);
        this.received.set(path, { path, type: 'directory', size: 0, ...meta });
        return;
      case 'file':
        this.received.set(path, await this.#file(path, header, meta, content));
        return;
      case 'symlink':
        this.received.set(path, await this.#symlink(path, header.linkname ?? '', meta));
        return;
      case 'link':
        this.received.set(path, await this.#hardlink(path, header.linkname ?? ''));
        return;
      default:
        refuse(path, `${header.type} entries are not accepted (only files, directories, symlinks and hardlinks)`);
    }
  }

  /** Waits for every file still being finished; throws the first failure among them. */
  async settle(): Promise<void> {
    await Promise.all(this.#finishing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #inBackground(task: Promise<void>): Promise<void> {
    const tracked = task.catch((error: unknown) => {
      this.#failure ??= error;
    });
    this.#finishing.add(tracked);
    void tracked.finally(() => this.#finishing.delete(tracked));
    if (this.#finishing.size >= maxFinishing) await Promise.race(this.#finishing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #parents(path: string): Promise<void> {
    await ensureParents(this.#options.staging, path, this.implicitDirectories, this.#knownDirectories);
  }

  async #clear(path: string): Promise<void> {
    if ((await clearPath(this.#options.staging, path)) === 'directory') this.#knownDirectories.clear();
  }

  /**
   * A new file at `path`: O_EXCL | O_NOFOLLOW first (nothing is there in a full copy);
   * when something is (a delta replacing a file), it is removed and the open repeated.
   */
  async #create(path: string): Promise<FileHandle> {
    try {
      return await createExclusive(this.#options.staging, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    await this.#clear(path);
    return createExclusive(this.#options.staging, path);
  }

  async #directory(path: string): Promise<void> {
    if (path === '.') return;
    const { staging } = this.#options;
    await this.#parents(path);
    const existing = await lstatOrUndefined(join(staging, path));
    if (existing?.isDirectory()) return;
    if (existing) await this.#clear(path);
    await mkdir(join(staging, path), { mode: 0o700 });
  }

  async #file(
    path: string,
    header: Header,
    meta: Pick<ManifestEntry, 'mode' | 'uid' | 'gid' | 'mtimeMs'>,
    content: EntryContent,
  ): Promise<ManifestEntry> {
    const { limits, preserveOwnership, fsync, progress } = this.#options;
    if (!limits.allowSetuidFiles && (meta.mode & 0o6000) !== 0) refuse(path, 'setuid or setgid file');
    const size = header.size ?? 0;
    if (this.#bytes + size > limits.maxTotalBytes)
      refuse(path, `files add up to more than ${limits.maxTotalBytes} bytes`);
    this.#bytes += size;
    await this.#parents(path);
    const handle = await this.#create(path);
    const hash = createHash('sha256');
    let written = 0;
    // One write in flight while the next batch arrives: disk and network overlap.
    let inflight: Promise<void> = Promise.resolve();
    try {
      const flush = async (chunks: Buffer[], bytes: number) => {
        await inflight;
        inflight = handle.writev(chunks).then(() => progress?.add(bytes, 0));
        inflight.catch(() => undefined);
        written += bytes;
      };
      let batch: Buffer[] = [];
      let batchBytes = 0;
      await content.consume((chunk) => {
        hash.update(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes < writeBatchBytes) return;
        const full = batch;
        const bytes = batchBytes;
        batch = [];
        batchBytes = 0;
        return flush(full, bytes);
      });
      if (batchBytes > 0) await flush(batch, batchBytes);
      await inflight;
      if (written !== size) refuse(path, `carried ${written} bytes, declared ${size}`);
    } catch (error) {
      await inflight.catch(() => undefined);
      await handle.close();
      throw error;
    }
    // The rest does not need the stream: it runs while the next entries arrive.
    await this.#inBackground(
      (async () => {
        try {
          // chown clears setuid bits, so it goes before chmod.
          if (preserveOwnership) await handle.chown(meta.uid, meta.gid);
          await handle.chmod(meta.mode);
          await handle.utimes(meta.mtimeMs / 1000, meta.mtimeMs / 1000);
          if (fsync) await handle.sync();
        } finally {
          await handle.close();
        }
        progress?.add(0, 1);
      })(),
    );
    return { path, type: 'file', size, ...meta, sha256: hash.digest('hex') };
  }

  async #symlink(
    path: string,
    target: string,
    meta: Pick<ManifestEntry, 'mode' | 'uid' | 'gid' | 'mtimeMs'>,
  ): Promise<ManifestEntry> {
    const { limits, staging, preserveOwnership } = this.#options;
    const problem = symlinkTargetProblem(path, target, limits);
    if (problem) refuse(path, problem);
    await this.#parents(path);
    await this.#clear(path);
    const full = join(staging, path);
    await symlink(target, full);
    if (preserveOwnership) await lchown(full, meta.uid, meta.gid);
    await lutimes(full, meta.mtimeMs / 1000, meta.mtimeMs / 1000);
    // The mode of a symlink means nothing on Linux; 0777 is what lstat reports.
    return { path, type: 'symlink', size: 0, ...meta, mode: 0o777, target };
  }

  async #hardlink(path: string, linkname: string): Promise<ManifestEntry> {
    const { limits, staging } = this.#options;
    if (path === '.') refuse(path, 'the root cannot be a hardlink');
    const source = checkVolumePath(linkname, limits, `hardlink target of ${JSON.stringify(path)}:`);
    if (source === '.' || source === path) refuse(path, 'hardlink to itself or to the root');
    const inside = await parentsAreDirectories(staging, source);
    const sourceStats = inside ? await lstatOrUndefined(join(staging, source)) : undefined;
    if (!sourceStats?.isFile()) refuse(path, `hardlink target ${JSON.stringify(source)} is not a file of the copy`);
    const sha256 = this.received.get(source)?.sha256 ?? this.#options.baseHash(source);
    if (!sha256) refuse(path, `hardlink target ${JSON.stringify(source)} has no known content`);
    // The target's metadata may still be being set; the link shares it.
    await this.settle();
    await this.#parents(path);
    await this.#clear(path);
    await link(join(staging, source), join(staging, path));
    const stats = await lstat(join(staging, path), { bigint: true });
    this.#options.progress?.add(0, 1);
    return {
      path,
      type: 'file',
      size: Number(stats.size),
      mode: Number(stats.mode) & 0o7777,
      uid: Number(stats.uid),
      gid: Number(stats.gid),
      mtimeMs: msFromNs(stats.mtimeNs),
      sha256,
    };
  }
}
