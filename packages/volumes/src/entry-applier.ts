import { type FileHandle, lchown, link, lstat, lutimes, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TransferLimits } from './config.js';
import { type EntryMetadata, metadataOf, refuseEntry } from './entry-metadata.js';
import { FileSink, type WriteBacklog } from './file-sink.js';
import type { ManifestEntry } from './manifest.js';
import { checkVolumePath, symlinkTargetProblem, tarNameToVolumePath } from './paths.js';
import type { ProgressMeter } from './progress.js';
import { clearPath, createExclusive, ensureParents, lstatOrUndefined, parentsAreDirectories } from './safe-fs.js';
import { msFromNs } from './scan.js';
import type { TarHeader } from './tar-reader.js';

/** Files being finished (metadata, fsync, close) in the background at most. */
const maxFinishing = 16;
/** Back-pressure: the stream waits while more than this many bytes wait to be written… */
const maxQueuedBytes = 16 * 1024 * 1024;
/** …or more than this many entries wait to be applied. */
const maxPendingEntries = 256;

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
 * Applies the volume entries of a snapshot stream to the staging directory, in stream
 * order, after checking each: canonical path inside the volume (paths.ts), no duplicate, a
 * type the volume may hold (file, directory, symlink whose target stays inside, hardlink
 * to a file already in the copy), no setuid files unless allowed, the size and entry
 * budgets. The checks run as an entry's header is read (`begin`); the file system work
 * runs in order behind the stream, and a file's content is hashed and copied as it
 * arrives (FileSink). What was applied is kept for the trailer's check.
 */
export class EntryApplier implements WriteBacklog {
  readonly received = new Map<string, ManifestEntry>();
  /** Parents created because the stream named a child before (or without) its directory. */
  readonly implicitDirectories = new Set<string>();
  /** Bytes of file content copied but not yet written. */
  queued = 0;
  /** Directories of the staging copy checked to be real directories (see ensureParents). */
  readonly #knownDirectories = new Set<string>();
  /** Paths named by the stream so far (duplicates are refused at the header). */
  readonly #seen = new Set<string>();
  /** Files whose metadata, fsync and close run while the next entries arrive. */
  readonly #finishing = new Set<Promise<void>>();
  /** Files begun whose content is not on disk yet: a failure releases them. */
  readonly #open = new Set<FileSink>();
  #chain: Promise<void> = Promise.resolve();
  #pending = 0;
  #waiters: (() => void)[] = [];
  #failure: unknown;
  #bytes = 0;
  readonly #options: ApplierOptions;

  constructor(options: ApplierOptions) {
    this.#options = options;
  }

  /** The first failure of the work behind the stream, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Whether the stream may go on without waiting ({@link room}). */
  get hasRoom(): boolean {
    return this.#failure !== undefined || (this.queued <= maxQueuedBytes && this.#pending <= maxPendingEntries);
  }

  /** Settles once there is room again, or a failure happened. */
  room(): Promise<void> {
    if (this.hasRoom) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  shrank(written: number): void {
    if (written > 0) this.#options.progress?.add(written, 0);
    this.#wake();
  }

  /** Runs `task` after every entry before it was applied (e.g. preparing the staging copy). */
  enqueue(task: () => Promise<void>): void {
    this.#pending++;
    this.#chain = this.#chain.then(async () => {
      try {
        if (this.#failure === undefined) await task();
      } catch (error) {
        this.#fail(error);
      } finally {
        this.#pending--;
        this.#wake();
      }
    });
  }

  /**
   * Checks an entry's header and queues its application; for a file, returns the sink its
   * content goes to (call `end()` on it when the content is complete). Throws on refusal.
   */
  begin(header: TarHeader): FileSink | undefined {
    const { limits } = this.#options;
    const isDirectory = header.type === 'directory';
    const path = tarNameToVolumePath(header.name, isDirectory, limits);
    if (this.#seen.has(path)) refuseEntry(path, 'duplicate entry');
    if (this.#seen.size >= limits.maxEntries) refuseEntry(path, `more than ${limits.maxEntries} entries`);
    if (path === '.' && !isDirectory) refuseEntry(path, 'the root must be a directory');
    const meta = metadataOf(header);
    this.#seen.add(path);
    switch (header.type) {
      case 'directory':
        this.enqueue(async () => {
          await this.#directory(path);
          this.received.set(path, { path, type: 'directory', size: 0, ...meta });
        });
        return undefined;
      case 'file':
        return this.#file(path, header.size, meta);
      case 'symlink': {
        const target = header.linkname ?? '';
        this.enqueue(async () => {
          this.received.set(path, await this.#symlink(path, target, meta));
        });
        return undefined;
      }
      case 'link': {
        const linkname = header.linkname ?? '';
        this.enqueue(async () => {
          this.received.set(path, await this.#hardlink(path, linkname));
        });
        return undefined;
      }
      default:
        refuseEntry(path, `${header.type} entries are not accepted (only files, directories, symlinks and hardlinks)`);
    }
  }

  /** Waits for every entry to be applied and every file finished; throws the first failure. */
  async settle(): Promise<void> {
    await this.#chain;
    await Promise.all(this.#finishing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Stops: files still receiving are dropped, and the work queued behind the stream ends. */
  async abort(error: unknown): Promise<void> {
    this.#fail(error);
    await this.#chain;
    await Promise.all(this.#finishing);
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    for (const sink of this.#open) sink.fail(this.#failure);
    this.#wake();
  }

  #wake(): void {
    if (!this.hasRoom) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async #inBackground(task: Promise<void>): Promise<void> {
    const tracked = task.catch((error: unknown) => {
      this.#fail(error);
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

  #file(path: string, size: number, meta: EntryMetadata): FileSink {
    const { limits, preserveOwnership, fsync, progress } = this.#options;
    if (!limits.allowSetuidFiles && (meta.mode & 0o6000) !== 0) refuseEntry(path, 'setuid or setgid file');
    if (this.#bytes + size > limits.maxTotalBytes)
      refuseEntry(path, `files add up to more than ${limits.maxTotalBytes} bytes`);
    this.#bytes += size;
    const sink = new FileSink(this);
    this.#open.add(sink);
    this.enqueue(async () => {
      let handle: FileHandle | undefined;
      try {
        await this.#parents(path);
        handle = await this.#create(path);
        sink.attach(handle);
        const content = await sink.written();
        if (content.received !== size) refuseEntry(path, `carried ${content.received} bytes, declared ${size}`);
        this.received.set(path, { path, type: 'file', size, ...meta, sha256: content.sha256 });
      } catch (error) {
        sink.fail(error);
        await handle?.close();
        throw error;
      } finally {
        this.#open.delete(sink);
      }
      const file = handle;
      // The rest does not need the stream: it runs while the next entries arrive.
      await this.#inBackground(
        (async () => {
          try {
            // chown clears setuid bits, so it goes before chmod.
            if (preserveOwnership) await file.chown(meta.uid, meta.gid);
            await file.chmod(meta.mode);
            await file.utimes(meta.mtimeMs / 1000, meta.mtimeMs / 1000);
            if (fsync) await file.sync();
          } finally {
            await file.close();
          }
          progress?.add(0, 1);
        })(),
      );
    });
    return sink;
  }

  async #symlink(path: string, target: string, meta: EntryMetadata): Promise<ManifestEntry> {
    const { limits, staging, preserveOwnership } = this.#options;
    const problem = symlinkTargetProblem(path, target, limits);
    if (problem) refuseEntry(path, problem);
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
    if (path === '.') refuseEntry(path, 'the root cannot be a hardlink');
    const source = checkVolumePath(linkname, limits, `hardlink target of ${JSON.stringify(path)}:`);
    if (source === '.' || source === path) refuseEntry(path, 'hardlink to itself or to the root');
    const inside = await parentsAreDirectories(staging, source);
    const sourceStats = inside ? await lstatOrUndefined(join(staging, source)) : undefined;
    if (!sourceStats?.isFile())
      refuseEntry(path, `hardlink target ${JSON.stringify(source)} is not a file of the copy`);
    const sha256 = this.received.get(source)?.sha256 ?? this.#options.baseHash(source);
    if (!sha256) refuseEntry(path, `hardlink target ${JSON.stringify(source)} has no known content`);
    // The target's metadata may still be being set; the link shares it.
    await Promise.all(this.#finishing);
    if (this.#failure !== undefined) throw this.#failure;
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
