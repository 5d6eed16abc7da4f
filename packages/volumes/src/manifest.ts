import { createHash } from 'node:crypto';
import { manifestFormat } from './protocol.js';

/** What a manifest records of one entry of a volume. */
export interface ManifestEntry {
  /** Relative, `/`-separated; `.` is the volume's root directory. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Bytes of a file; 0 for directories and symlinks. */
  size: number;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, milliseconds since the epoch (rounded from the file system's ns). */
  mtimeMs: number;
  /** A symlink's target, as stored in the link. */
  target?: string;
  /** sha256 (hex) of a file's content. */
  sha256?: string;
}

/** An entry the manifest leaves out, and why (devices, FIFOs and sockets are never copied). */
export interface SkippedEntry {
  path: string;
  reason: string;
}

/**
 * The state of a volume at one moment: every entry in a canonical order (depth first,
 * a directory before its children, siblings sorted by name). The id is a digest of the
 * entries, so two manifests with the same id describe the same content and metadata.
 */
export interface Manifest {
  format: typeof manifestFormat;
  id: string;
  entries: ManifestEntry[];
  skipped: SkippedEntry[];
  /** Number of files and the sum of their sizes. */
  files: number;
  bytes: number;
}

/** One line per entry, fields in a fixed order: the input of the manifest id. */
function canonicalLine(entry: ManifestEntry): string {
  return `${JSON.stringify([
    entry.path,
    entry.type,
    entry.size,
    entry.mode,
    entry.uid,
    entry.gid,
    entry.mtimeMs,
    entry.target ?? null,
    entry.sha256 ?? null,
  ])}\n`;
}

export function manifestId(entries: readonly ManifestEntry[]): string {
  const hash = createHash('sha256');
  hash.update(`${manifestFormat}\n`);
  for (const entry of entries) hash.update(canonicalLine(entry));
  return hash.digest('hex');
}

export function makeManifest(entries: ManifestEntry[], skipped: SkippedEntry[] = []): Manifest {
  let files = 0;
  let bytes = 0;
  for (const entry of entries) {
    if (entry.type === 'file') {
      files++;
      bytes += entry.size;
    }
  }
  return { format: manifestFormat, id: manifestId(entries), entries, skipped, files, bytes };
}

/** Whether two entries describe the same thing (path aside). */
export function sameEntry(a: ManifestEntry, b: ManifestEntry, options: { ownership?: boolean } = {}): boolean {
  return (
    a.type === b.type &&
    a.size === b.size &&
    a.mode === b.mode &&
    a.mtimeMs === b.mtimeMs &&
    (a.target ?? null) === (b.target ?? null) &&
    (a.sha256 ?? null) === (b.sha256 ?? null) &&
    (options.ownership === false || (a.uid === b.uid && a.gid === b.gid))
  );
}

export interface ManifestDiff {
  /** In `next` only, in `next`'s order. */
  added: string[];
  /** In both, with any difference (type, size, mode, owner, mtime, target or content). */
  changed: string[];
  /** In `base` only, deepest first (the order to remove them in). */
  deleted: string[];
  /** Number of entries identical in both. */
  unchanged: number;
}

/** What turns `base` into `next`. */
export function diffManifests(base: Manifest, next: Manifest): ManifestDiff {
  const before = new Map(base.entries.map((entry) => [entry.path, entry]));
  const after = new Set<string>();
  const diff: ManifestDiff = { added: [], changed: [], deleted: [], unchanged: 0 };
  for (const entry of next.entries) {
    after.add(entry.path);
    const old = before.get(entry.path);
    if (!old) diff.added.push(entry.path);
    else if (!sameEntry(old, entry)) diff.changed.push(entry.path);
    else diff.unchanged++;
  }
  for (let i = base.entries.length - 1; i >= 0; i--) {
    const path = base.entries[i]?.path;
    if (path !== undefined && !after.has(path)) diff.deleted.push(path);
  }
  return diff;
}
