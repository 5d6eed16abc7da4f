import { lchown, link, lutimes, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsConcurrency, mapLimit } from './concurrency.js';
import type { Manifest } from './manifest.js';

/**
 * Builds `staging` as a copy of `from` described by `manifest`, without copying data:
 * directories are made anew (their metadata is set once the copy is complete), symlinks
 * recreated, files hardlinked. Received files later replace links by new files (unlink,
 * then create), so the current copy's inodes are never written: copy-on-write at file
 * granularity, on any file system. `from` must have been checked against the manifest.
 */
export async function linkCopy(
  from: string,
  staging: string,
  manifest: Manifest,
  preserveOwnership: boolean,
): Promise<void> {
  await mkdir(staging, { mode: 0o700 });
  // Directories first, in order (parents before children); then everything else at once.
  for (const entry of manifest.entries) {
    if (entry.type === 'directory' && entry.path !== '.') await mkdir(join(staging, entry.path), { mode: 0o700 });
  }
  const leaves = manifest.entries.filter((entry) => entry.type !== 'directory');
  await mapLimit(leaves, fsConcurrency, async (entry) => {
    const target = join(staging, entry.path);
    if (entry.type === 'file') {
      await link(join(from, entry.path), target);
    } else if (entry.target !== undefined) {
      await symlink(entry.target, target);
      if (preserveOwnership) await lchown(target, entry.uid, entry.gid);
      await lutimes(target, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    }
  });
}
