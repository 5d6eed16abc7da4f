import { lchownSync, linkSync, lutimesSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EventLoopSlices } from './concurrency.js';
import type { Manifest } from './manifest.js';

/**
 * Builds `staging` as a copy of `from` described by `manifest`, without copying data:
 * directories are made anew (their metadata is set once the copy is complete), symlinks
 * recreated, files hardlinked. Received files later replace links by new files (unlink,
 * then create), so the current copy's inodes are never written: copy-on-write at file
 * granularity, on any file system. `from` must have been checked against the manifest.
 * Synchronous calls in slices (EventLoopSlices): this runs while a relocation's service is
 * down, once per entry of the volume.
 */
export async function linkCopy(
  from: string,
  staging: string,
  manifest: Manifest,
  preserveOwnership: boolean,
): Promise<void> {
  const slices = new EventLoopSlices();
  mkdirSync(staging, { mode: 0o700 });
  // Manifest order puts every directory before what it holds.
  for (const entry of manifest.entries) {
    await slices.tick();
    const target = join(staging, entry.path);
    if (entry.type === 'directory') {
      if (entry.path !== '.') mkdirSync(target, { mode: 0o700 });
    } else if (entry.type === 'file') {
      linkSync(join(from, entry.path), target);
    } else if (entry.target !== undefined) {
      symlinkSync(entry.target, target);
      if (preserveOwnership) lchownSync(target, entry.uid, entry.gid);
      lutimesSync(target, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    }
  }
}
