import type { BigIntStats } from 'node:fs';

/**
 * File systems stamp ctime from a coarse clock (one scheduler tick, a few ms, behind the
 * real time): a write just after a scan may carry a stamp no later than one taken just
 * before it. Entries younger than this window at scan time are not trusted.
 */
export const racyWindowMs = 100;
const racyWindowNs = BigInt(racyWindowMs) * 1_000_000n;

interface CachedHash {
  ino: string;
  size: number;
  mtimeNs: string;
  /** Absent for files this package wrote itself (their ctime moves when hardlinks come and go). */
  ctimeNs?: string;
  /** When the file was stat'ed before hashing, on the file system's clock. */
  recordedAtNs?: string;
  sha256: string;
}

/**
 * Remembers each file's content hash together with the stat it was computed under, so the
 * next manifest rehashes only files whose stat moved (git's index, in small).
 *
 * Files found by a scan are matched on inode, size, mtime and ctime, and only trusted when
 * their ctime was older than the scan by more than racyWindowMs: a write in the same clock tick
 * as the scan could otherwise keep every stamp and go unnoticed ("racy git"). Files written
 * by the receiver are matched on inode, size and mtime: nobody else writes into a copy
 * that is being received.
 */
export class StatCache {
  readonly #entries = new Map<string, CachedHash>();

  lookup(path: string, stats: BigIntStats): string | undefined {
    const cached = this.#entries.get(path);
    if (!cached) return undefined;
    if (cached.ino !== String(stats.ino) || cached.size !== Number(stats.size)) return undefined;
    if (cached.mtimeNs !== String(stats.mtimeNs)) return undefined;
    if (cached.ctimeNs !== undefined) {
      if (cached.ctimeNs !== String(stats.ctimeNs) || cached.recordedAtNs === undefined) return undefined;
      if (stats.ctimeNs + racyWindowNs >= BigInt(cached.recordedAtNs)) return undefined;
    }
    return cached.sha256;
  }

  /** A hash computed from a file read under `stats`, stat'ed at `recordedAtNs`. */
  recordScanned(path: string, stats: BigIntStats, sha256: string, recordedAtNs: bigint): void {
    this.#entries.set(path, {
      ino: String(stats.ino),
      size: Number(stats.size),
      mtimeNs: String(stats.mtimeNs),
      ctimeNs: String(stats.ctimeNs),
      recordedAtNs: String(recordedAtNs),
      sha256,
    });
  }

  /** A file this package wrote with known content. */
  recordWritten(path: string, stats: BigIntStats, sha256: string): void {
    this.#entries.set(path, {
      ino: String(stats.ino),
      size: Number(stats.size),
      mtimeNs: String(stats.mtimeNs),
      sha256,
    });
  }

  forget(path: string): void {
    this.#entries.delete(path);
  }

  /** Drops entries for paths not in `keep` (files that were deleted). */
  retain(keep: ReadonlySet<string>): void {
    for (const path of this.#entries.keys()) if (!keep.has(path)) this.#entries.delete(path);
  }

  get size(): number {
    return this.#entries.size;
  }

  toJSON(): Record<string, CachedHash> {
    return Object.fromEntries(this.#entries);
  }

  /** Rebuilds a cache from its JSON; anything malformed is dropped (the cost is a rehash). */
  static fromJSON(raw: unknown): StatCache {
    const cache = new StatCache();
    if (!raw || typeof raw !== 'object') return cache;
    for (const [path, value] of Object.entries(raw as Record<string, unknown>)) {
      const v = value as Partial<CachedHash> | null;
      if (
        v &&
        isDigits(v.ino) &&
        typeof v.size === 'number' &&
        isDigits(v.mtimeNs) &&
        typeof v.sha256 === 'string' &&
        /^[0-9a-f]{64}$/.test(v.sha256) &&
        (v.ctimeNs === undefined || (isDigits(v.ctimeNs) && isDigits(v.recordedAtNs)))
      ) {
        const entry: CachedHash = { ino: v.ino, size: v.size, mtimeNs: v.mtimeNs, sha256: v.sha256 };
        if (v.ctimeNs !== undefined && v.recordedAtNs !== undefined) {
          entry.ctimeNs = v.ctimeNs;
          entry.recordedAtNs = v.recordedAtNs;
        }
        cache.#entries.set(path, entry);
      }
    }
    return cache;
  }
}

function isDigits(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9]{1,30}$/.test(value);
}

/** Now, on the clock file systems stamp ctime with (the wall clock), in nanoseconds. */
export function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
