import { join } from 'node:path';
import { type Manifest, type ManifestEntry, makeManifest } from './manifest.js';
import { hashFile, msFromNs, type ScannedEntry, scanTree } from './scan.js';
import { type StatCache, wallClockNs } from './stat-cache.js';

export interface BuildManifestOptions {
  /**
   * Hashes from an earlier manifest of the same directory: files whose stat has not moved
   * are not read again. Updated in place with every hash computed.
   * @default no cache: every file is read
   */
  cache?: StatCache;
}

function withoutStats(entry: ScannedEntry): ManifestEntry {
  const { stats: _stats, ...rest } = entry;
  return rest;
}

/**
 * The manifest of a directory: every directory, regular file and symlink with its
 * metadata and (files) content sha256, streamed from disk. A file that changes while it is
 * hashed is described as it was when opened and left out of the cache.
 */
export async function buildManifest(dir: string, options: BuildManifestOptions = {}): Promise<Manifest> {
  const scan = await scanTree(dir);
  const entries: ManifestEntry[] = [];
  for (const scanned of scan.entries) {
    if (scanned.type !== 'file') {
      entries.push(withoutStats(scanned));
      continue;
    }
    const known = options.cache?.lookup(scanned.path, scanned.stats);
    if (known) {
      entries.push({ ...withoutStats(scanned), sha256: known });
      continue;
    }
    const recordedAtNs = wallClockNs();
    const hashed = await hashFile(join(dir, scanned.path));
    if (!hashed) continue;
    const { before } = hashed;
    entries.push({
      ...withoutStats(scanned),
      size: Number(before.size),
      mode: Number(before.mode) & 0o7777,
      uid: Number(before.uid),
      gid: Number(before.gid),
      mtimeMs: msFromNs(before.mtimeNs),
      sha256: hashed.sha256,
    });
    if (hashed.stable) options.cache?.recordScanned(scanned.path, before, hashed.sha256, recordedAtNs);
    else options.cache?.forget(scanned.path);
  }
  return makeManifest(entries, scan.skipped);
}
