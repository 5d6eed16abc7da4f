import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Pack, pack } from 'tar-stream';
import { sha256Hex } from './body-check.js';
import { BufferPool } from './buffer-pool.js';
import { type Manifest, type ManifestEntry, makeManifest, sameEntry } from './manifest.js';
import type { ProgressMeter } from './progress.js';
import { snapshotFormat } from './protocol.js';
import { msFromNs, readChunkBytes, type ScannedEntry, scanTree } from './scan.js';
import { type StatCache, wallClockNs } from './stat-cache.js';
import { addEntry, addStreamedEntry, controlEntryHeader, volumeEntryHeader } from './tar-entries.js';

/** First control entry: what the stream is and what it applies to. */
export interface SnapshotHeader {
  format: typeof snapshotFormat;
  volume: string;
  /** Manifest the stream is a delta against; null for a full copy. */
  base: string | null;
  /** What the sender means to send (a live volume may end up sending a little less). */
  planned: { entries: number; files: number; bytes: number };
}

/** Last control entry: the complete manifest of the copy the receiver now holds. */
export interface SnapshotTrailer {
  manifest: Manifest;
  /** Paths of the base that the copy no longer has, deepest first. */
  deleted: string[];
  sent: { entries: number; files: number; bytes: number };
}

export interface SnapshotResult {
  manifest: Manifest;
  base: string | null;
  deleted: string[];
  sent: { entries: number; files: number; bytes: number };
  /** sha256 (hex) of the two control entries' bytes, for the body signature. */
  control: { header: string; trailer: string };
}

export interface SnapshotStreamOptions {
  volume: string;
  /** Manifest the receiver holds; unchanged entries are left out. @default a full copy */
  base?: Manifest;
  /** Hashes from earlier scans; updated with what is read. */
  cache: StatCache;
  progress?: ProgressMeter;
}

function unchanged(scanned: ScannedEntry, before: ManifestEntry | undefined, cache: StatCache): string | false {
  if (!before) return false;
  const { stats: _stats, ...entry } = scanned;
  if (scanned.type !== 'file') return sameEntry(entry, before) ? 'same' : false;
  const known = cache.lookup(scanned.path, scanned.stats);
  if (!known || known !== before.sha256) return false;
  return sameEntry({ ...entry, sha256: known }, before) ? known : false;
}

/**
 * Reads exactly `size` bytes of an open file, hashing them. A file that shrank while being
 * read is padded with zeros (the declared tar size must be met); `short` then says the
 * copy is not of one version, so the file is not cached and will be sent again.
 */
async function* fileChunks(
  pool: BufferPool,
  handle: FileHandle,
  size: number,
  hash: Hash,
  state: { short: boolean },
  progress?: ProgressMeter,
) {
  // One read ahead: the disk works on the next chunk while this one is hashed and sent.
  const readAt = async (at: number): Promise<Buffer> => {
    const buffer = pool.take(Math.min(readChunkBytes, size - at));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, at + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < buffer.length) {
      state.short = true;
      buffer.fill(0, filled);
    }
    return buffer;
  };
  let position = 0;
  let next = size > 0 ? readAt(0) : undefined;
  while (next) {
    const chunk = await next;
    position += chunk.length;
    next = position < size ? readAt(position) : undefined;
    hash.update(chunk);
    progress?.add(chunk.length, 0);
    yield chunk;
  }
}

async function sendFile(
  pool: BufferPool,
  archive: Pack,
  dir: string,
  scanned: ScannedEntry,
  cache: StatCache,
  progress: ProgressMeter | undefined,
): Promise<ManifestEntry | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(join(dir, scanned.path), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') return undefined;
    throw error;
  }
  try {
    const recordedAtNs = wallClockNs();
    const before = await handle.stat({ bigint: true });
    if (!before.isFile()) return undefined;
    const entry: ManifestEntry = {
      path: scanned.path,
      type: 'file',
      size: Number(before.size),
      mode: Number(before.mode) & 0o7777,
      uid: Number(before.uid),
      gid: Number(before.gid),
      mtimeMs: msFromNs(before.mtimeNs),
    };
    const hash = createHash('sha256');
    const state = { short: false };
    await addStreamedEntry(
      archive,
      volumeEntryHeader(entry),
      fileChunks(pool, handle, entry.size, hash, state, progress),
    );
    entry.sha256 = hash.digest('hex');
    progress?.add(0, 1);
    const after = await handle.stat({ bigint: true });
    const stable =
      !state.short &&
      after.size === before.size &&
      after.mtimeNs === before.mtimeNs &&
      after.ctimeNs === before.ctimeNs;
    if (!stable) {
      cache.forget(scanned.path);
    } else if (cache.lookup(scanned.path, before) !== entry.sha256) {
      // An entry the cache already trusts for this stat and content stays as it is (a
      // receiver's own record has no racy window).
      cache.recordScanned(scanned.path, before, entry.sha256, recordedAtNs);
    }
    return entry;
  } finally {
    await handle.close();
  }
}

/**
 * A snapshot of `dir` as a tar stream: a header control entry, every entry that differs
 * from `base` (all of them without a base) in canonical order, then a trailer with the
 * full manifest and the deletions. File hashes are computed while the bytes go out, so a
 * volume is read once. The caller consumes `stream` and hands each chunk to `recycle` once
 * written out (the read buffers are reused); `done` settles when the trailer is written
 * (or the stream failed).
 */
export function streamSnapshot(
  dir: string,
  options: SnapshotStreamOptions,
): { stream: Pack; done: Promise<SnapshotResult>; recycle: (chunk: Buffer) => void } {
  const archive = pack();
  const pool = new BufferPool(readChunkBytes, 16);
  const done = (async (): Promise<SnapshotResult> => {
    try {
      const scan = await scanTree(dir);
      const before = new Map((options.base?.entries ?? []).map((entry) => [entry.path, entry]));
      const plan = scan.entries.map((scanned) => ({
        scanned,
        same: unchanged(scanned, before.get(scanned.path), options.cache),
      }));
      const toSend = plan.filter((item) => item.same === false);
      const planned = {
        entries: toSend.length,
        files: toSend.filter((item) => item.scanned.type === 'file').length,
        bytes: toSend.reduce((sum, item) => sum + (item.scanned.type === 'file' ? item.scanned.size : 0), 0),
      };
      options.progress?.plan(planned.bytes, planned.files);
      const header: SnapshotHeader = {
        format: snapshotFormat,
        volume: options.volume,
        base: options.base?.id ?? null,
        planned,
      };
      const headerBytes = Buffer.from(JSON.stringify(header));
      const control = { header: sha256Hex(headerBytes), trailer: '' };
      await addEntry(archive, controlEntryHeader('header', headerBytes.length), headerBytes);

      const entries: ManifestEntry[] = [];
      const sent = { entries: 0, files: 0, bytes: 0 };
      for (const { scanned, same } of plan) {
        const { stats: _stats, ...entry } = scanned;
        if (same !== false) {
          entries.push(scanned.type === 'file' ? { ...entry, sha256: same } : entry);
          continue;
        }
        if (scanned.type === 'file') {
          const fileEntry = await sendFile(pool, archive, dir, scanned, options.cache, options.progress);
          if (!fileEntry) continue;
          entries.push(fileEntry);
          sent.files++;
          sent.bytes += fileEntry.size;
        } else {
          await addEntry(archive, volumeEntryHeader(entry));
          entries.push(entry);
        }
        sent.entries++;
      }
      const manifest = makeManifest(entries, scan.skipped);
      const present = new Set(entries.map((entry) => entry.path));
      const deleted: string[] = [];
      for (const entry of [...before.values()].reverse()) if (!present.has(entry.path)) deleted.push(entry.path);
      const trailer: SnapshotTrailer = { manifest, deleted, sent };
      const trailerBytes = Buffer.from(JSON.stringify(trailer));
      control.trailer = sha256Hex(trailerBytes);
      await addEntry(archive, controlEntryHeader('trailer', trailerBytes.length), trailerBytes);
      archive.finalize();
      options.cache.retain(new Set(entries.filter((entry) => entry.type === 'file').map((entry) => entry.path)));
      return { manifest, base: options.base?.id ?? null, deleted, sent, control };
    } catch (error) {
      archive.destroy(error as Error);
      throw error;
    }
  })();
  return { stream: archive, done, recycle: (chunk) => pool.recycle(chunk) };
}
