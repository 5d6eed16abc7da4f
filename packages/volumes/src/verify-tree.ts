import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { EventLoopSlices } from './concurrency.js';
import type { Manifest, ManifestEntry } from './manifest.js';
import { parentOf } from './paths.js';
import { msFromNs } from './scan.js';
import { StatCache } from './stat-cache.js';

function refuse(problem: string): never {
  throw new InvalidInputError('received copy does not match its manifest', [problem]);
}

/**
 * Walks the staged copy and checks it is exactly the manifest: the same names in every
 * directory (nothing extra, nothing missing), the same types, and for files and symlinks
 * the size, mode, mtime, owner (when preserved) and symlink target. Directory metadata is
 * set after this walk. File contents were hashed on receipt or come unchanged from the
 * previous copy. Returns a stat cache of the copy's files with their hashes. Synchronous
 * calls in slices (EventLoopSlices): the walk runs while a relocation's service is down.
 */
export async function verifyTree(staging: string, manifest: Manifest, ownership: boolean): Promise<StatCache> {
  const children = new Map<string, Set<string>>();
  const byPath = new Map<string, ManifestEntry>();
  for (const entry of manifest.entries) {
    byPath.set(entry.path, entry);
    if (entry.type === 'directory') children.set(entry.path, new Set());
    if (entry.path !== '.') {
      const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
      children.get(parentOf(entry.path))?.add(name);
    }
  }
  const cache = new StatCache();
  const slices = new EventLoopSlices();
  for (const [dir, expected] of children) {
    await slices.tick();
    const names = readdirSync(join(staging, dir));
    if (names.length !== expected.size || names.some((name) => !expected.has(name))) {
      const extra = names.filter((name) => !expected.has(name));
      const missing = [...expected].filter((name) => !names.includes(name));
      refuse(`directory ${JSON.stringify(dir)}: extra ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`);
    }
    for (const name of names) {
      await slices.tick();
      const path = dir === '.' ? name : `${dir}/${name}`;
      const entry = byPath.get(path);
      if (!entry) refuse(`${path} is not in the manifest`);
      const stats = lstatSync(join(staging, path), { bigint: true });
      const type = stats.isDirectory()
        ? 'directory'
        : stats.isFile()
          ? 'file'
          : stats.isSymbolicLink()
            ? 'symlink'
            : 'other';
      if (type !== entry.type) refuse(`${path} is a ${type}, the manifest says ${entry.type}`);
      if (entry.type === 'directory') continue;
      if (ownership && (Number(stats.uid) !== entry.uid || Number(stats.gid) !== entry.gid)) {
        refuse(`${path}: owner differs`);
      }
      if (msFromNs(stats.mtimeNs) !== entry.mtimeMs) refuse(`${path}: mtime differs`);
      if (entry.type === 'symlink') {
        if (readlinkSync(join(staging, path)) !== entry.target) refuse(`${path}: symlink target differs`);
        continue;
      }
      if (Number(stats.size) !== entry.size) refuse(`${path}: size differs`);
      if ((Number(stats.mode) & 0o7777) !== entry.mode) refuse(`${path}: mode differs`);
      if (entry.sha256) cache.recordWritten(path, stats, entry.sha256);
    }
  }
  return cache;
}
