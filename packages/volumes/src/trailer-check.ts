import { chmod, chown, lstat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { fsConcurrency, mapLimit } from './concurrency.js';
import type { TransferConfig } from './config.js';
import { type Manifest, type ManifestEntry, sameEntry } from './manifest.js';
import { parseManifest } from './manifest-check.js';
import { checkVolumePath, depthOf } from './paths.js';
import { clearPath, parentsAreDirectories, syncDirectory } from './safe-fs.js';
import type { StatCache } from './stat-cache.js';
import { verifyTree } from './verify-tree.js';
import type { WorkDir } from './work-dir.js';

function refuse(problem: string): never {
  throw new InvalidInputError('snapshot stream refused', [problem]);
}

export interface CompletionInput {
  work: WorkDir;
  config: Pick<TransferConfig, 'limits' | 'fsync' | 'preserveOwnership'>;
  /** The base the delta applies to; undefined for a full copy. */
  base: Manifest | undefined;
  baseEntries: ReadonlyMap<string, ManifestEntry>;
  /** What the stream carried, as applied (EntryApplier). */
  received: ReadonlyMap<string, ManifestEntry>;
  implicitDirectories: ReadonlySet<string>;
}

/**
 * The end of a receive, once the trailer arrived: validates its manifest (parseManifest:
 * paths, tree, symlink chains, limits, id), checks the stream against it (each entry sent
 * matches it, each entry not sent is unchanged from the base, the deletion list is exactly
 * base minus manifest), applies the deletions, verifies the staged tree (verifyTree) and
 * sets directory metadata. Returns the manifest and a stat cache of the new copy.
 */
export async function checkAndComplete(
  trailerRaw: unknown,
  input: CompletionInput,
): Promise<{ manifest: Manifest; cache: StatCache; deleted: number }> {
  const { work, config, base, baseEntries, received, implicitDirectories } = input;
  const { limits, preserveOwnership } = config;
  const trailer = trailerRaw as { manifest?: unknown; deleted?: unknown } | null;
  if (!trailer || typeof trailer !== 'object') refuse('trailer is not an object');
  const manifest = parseManifest(trailer.manifest, limits, 'trailer manifest');
  const target = new Map(manifest.entries.map((entry) => [entry.path, entry]));

  // Every entry that came must be what the manifest says.
  for (const [path, got] of received) {
    const want = target.get(path);
    if (!want) refuse(`${JSON.stringify(path)} was sent but is not in the manifest`);
    const comparable = got.type === 'symlink' ? { ...got, mode: want.mode } : got;
    if (!sameEntry(comparable, want)) {
      const what = got.sha256 !== want.sha256 ? 'content (sha256)' : 'metadata';
      refuse(`${JSON.stringify(path)}: ${what} does not match the manifest`);
    }
  }
  for (const dir of implicitDirectories) {
    if (target.get(dir)?.type !== 'directory')
      refuse(`${JSON.stringify(dir)} was implied by an entry but is not a directory in the manifest`);
  }
  // Every entry that did not come must be unchanged from the base.
  for (const entry of manifest.entries) {
    if (received.has(entry.path)) continue;
    const old = baseEntries.get(entry.path);
    if (!old || !sameEntry(old, entry)) refuse(`${JSON.stringify(entry.path)} changed but was not sent`);
  }
  // Deletions are derived here from the base; the sender's list must agree.
  const deletions = base ? base.entries.filter((entry) => !target.has(entry.path)).map((entry) => entry.path) : [];
  const listed = Array.isArray(trailer.deleted) ? trailer.deleted : refuse('trailer has no deletion list');
  const listedSet = new Set(listed.map((path) => checkVolumePath(String(path), limits, 'deleted path')));
  if (listedSet.size !== deletions.length || deletions.some((path) => !listedSet.has(path))) {
    refuse('the deletion list does not match the manifest and the base');
  }
  deletions.sort((a, b) => depthOf(b) - depthOf(a));
  for (const path of deletions) {
    if (await parentsAreDirectories(work.staging, path)) await clearPath(work.staging, path);
  }

  const cache = await verifyTree(work.staging, manifest, preserveOwnership);
  // Directory metadata last: entries created inside would move their mtimes. Setting a
  // directory's own metadata does not touch its parent, so all can go at once.
  const directories = manifest.entries.filter((entry) => entry.type === 'directory');
  await mapLimit(directories, fsConcurrency, async (dir) => {
    const full = join(work.staging, dir.path);
    if (!(await lstat(full)).isDirectory()) refuse(`${dir.path} is no longer a directory`);
    if (preserveOwnership) await chown(full, dir.uid, dir.gid);
    await chmod(full, dir.mode);
    await utimes(full, dir.mtimeMs / 1000, dir.mtimeMs / 1000);
    if (config.fsync) await syncDirectory(full);
  });
  return { manifest, cache, deleted: deletions.length };
}
