import { createHash } from 'node:crypto';
import { type BigIntStats, constants, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { EventLoopSlices } from './concurrency.js';
import type { ManifestEntry, SkippedEntry } from './manifest.js';

/** Read size when hashing or sending a file: large reads keep syscalls and stream chunks few. */
export const readChunkBytes = 1024 * 1024;

/** An entry found on disk, with the stat it was found under (files need it for the cache). */
export interface ScannedEntry extends Omit<ManifestEntry, 'sha256'> {
  stats: BigIntStats;
}

export interface ScanResult {
  entries: ScannedEntry[];
  skipped: SkippedEntry[];
}

/** Milliseconds from a nanosecond stamp, rounded: what a receiver sets survives a round trip. */
export function msFromNs(ns: bigint): number {
  return Number((ns + 500_000n) / 1_000_000n);
}

function entryFromStats(path: string, stats: BigIntStats): Omit<ManifestEntry, 'type' | 'sha256'> {
  return {
    path,
    size: 0,
    mode: Number(stats.mode) & 0o7777,
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    mtimeMs: msFromNs(stats.mtimeNs),
  };
}

function kindOf(stats: BigIntStats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isSocket()) return 'socket';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isCharacterDevice()) return 'character device';
  return 'unknown file type';
}

function isEnoent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Walks a volume without following symlinks: directories, regular files and symlinks are
 * recorded in canonical order; devices, FIFOs, sockets and names that are not UTF-8 are
 * skipped with a reason. Entries that vanish during the walk (a live volume) are left out.
 */
export async function scanTree(root: string): Promise<ScanResult> {
  const rootStats = await lstat(root, { bigint: true });
  if (!rootStats.isDirectory()) throw new InvalidInputError(`volume ${root} is not a directory`);
  const result: ScanResult = { entries: [], skipped: [] };
  result.entries.push({ ...entryFromStats('.', rootStats), type: 'directory', stats: rootStats });
  await walk(root, '.', result, new EventLoopSlices());
  return result;
}

/** Synchronous calls in slices (EventLoopSlices): a walk is thousands of metadata calls. */
async function walk(root: string, dir: string, result: ScanResult, slices: EventLoopSlices): Promise<void> {
  let raw: Buffer[];
  try {
    raw = readdirSync(join(root, dir), { encoding: 'buffer' });
  } catch (error) {
    if (isEnoent(error)) return;
    throw error;
  }
  const names: string[] = [];
  for (const bytes of raw) {
    const name = bytes.toString('utf8');
    const path = dir === '.' ? name : `${dir}/${name}`;
    if (!Buffer.from(name, 'utf8').equals(bytes)) {
      result.skipped.push({ path, reason: 'name is not valid UTF-8' });
    } else {
      names.push(name);
    }
  }
  names.sort();
  for (const name of names) {
    await slices.tick();
    const path = dir === '.' ? name : `${dir}/${name}`;
    let stats: BigIntStats;
    let target: string | undefined;
    try {
      stats = lstatSync(join(root, path), { bigint: true });
      target = stats.isSymbolicLink() ? readlinkSync(join(root, path)) : undefined;
    } catch (error) {
      if (isEnoent(error)) continue;
      throw error;
    }
    const base = entryFromStats(path, stats);
    if (stats.isDirectory()) {
      result.entries.push({ ...base, type: 'directory', stats });
      await walk(root, path, result, slices);
    } else if (stats.isFile()) {
      result.entries.push({ ...base, type: 'file', size: Number(stats.size), stats });
    } else if (stats.isSymbolicLink() && target !== undefined) {
      result.entries.push({ ...base, type: 'symlink', target, stats });
    } else {
      result.skipped.push({ path, reason: `${kindOf(stats)}: only files, directories and symlinks are copied` });
    }
  }
}

export interface HashedFile {
  sha256: string;
  /** fstat of the open file before reading. */
  before: BigIntStats;
  /** Whether the file kept its stat while it was read (the hash is then of one version). */
  stable: boolean;
}

/**
 * sha256 of a file, streamed. Opens without following symlinks; undefined when the path
 * is gone or is no longer a regular file.
 */
export async function hashFile(path: string): Promise<HashedFile | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') return undefined;
    throw error;
  }
  try {
    const before = await handle.stat({ bigint: true });
    if (!before.isFile()) return undefined;
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(readChunkBytes);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
    const after = await handle.stat({ bigint: true });
    const stable = after.mtimeNs === before.mtimeNs && after.ctimeNs === before.ctimeNs && after.size === before.size;
    return { sha256: hash.digest('hex'), before, stable };
  } finally {
    await handle.close();
  }
}
