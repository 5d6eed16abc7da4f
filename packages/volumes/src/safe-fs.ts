import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { ancestorsOf } from './paths.js';

/**
 * File operations inside a staging directory that never follow a symlink: every parent is
 * checked with lstat (and created here, one level at a time, when missing), files are
 * created with O_EXCL | O_NOFOLLOW after whatever was at the path is removed, removals
 * unlink symlinks instead of following them. Paths are already canonical (paths.ts), so
 * `join(root, path)` cannot leave `root` by itself; these checks make sure the file
 * system cannot make it leave either. The staging directory is private (0700, owned by
 * the receiver), so nothing else races these checks.
 */

function refuse(path: string, problem: string): never {
  throw new InvalidInputError(`snapshot entry ${JSON.stringify(path)} refused`, [problem]);
}

function isEnoent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Makes sure every ancestor of `path` is a real directory; creates missing ones (recorded
 * in `created`). Ancestors in `known` were checked before and are skipped; the caller
 * empties `known` whenever it removes a directory (clearPath says so).
 */
export async function ensureParents(
  root: string,
  path: string,
  created?: Set<string>,
  known?: Set<string>,
): Promise<void> {
  for (const ancestor of ancestorsOf(path)) {
    if (known?.has(ancestor)) continue;
    const full = join(root, ancestor);
    try {
      const stats = await lstat(full);
      if (stats.isSymbolicLink()) refuse(path, `its parent ${JSON.stringify(ancestor)} is a symlink`);
      if (!stats.isDirectory()) refuse(path, `its parent ${JSON.stringify(ancestor)} is not a directory`);
    } catch (error) {
      if (!isEnoent(error)) throw error;
      await mkdir(full, { mode: 0o700 });
      created?.add(ancestor);
    }
    known?.add(ancestor);
  }
}

/** Whether every ancestor of `path` is a real directory (then `path` can be acted on safely). */
export async function parentsAreDirectories(root: string, path: string): Promise<boolean> {
  for (const ancestor of ancestorsOf(path)) {
    try {
      const stats = await lstat(join(root, ancestor));
      if (!stats.isDirectory()) return false;
    } catch (error) {
      if (isEnoent(error)) return false;
      throw error;
    }
  }
  return true;
}

/**
 * Removes whatever is at `path` (a directory with its content; a symlink itself) and says
 * what it was. Parents must be checked.
 */
export async function clearPath(root: string, path: string): Promise<'directory' | 'other' | 'nothing'> {
  const full = join(root, path);
  try {
    const stats = await lstat(full);
    if (stats.isDirectory()) {
      await rm(full, { recursive: true, force: true });
      return 'directory';
    }
    await unlink(full);
    return 'other';
  } catch (error) {
    if (!isEnoent(error)) throw error;
    return 'nothing';
  }
}

/** A new regular file at `path` (nothing may be there), opened for writing, private until finished. */
export function createExclusive(root: string, path: string): Promise<FileHandle> {
  return open(
    join(root, path),
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
}

/** lstat, or undefined when nothing is there. */
export async function lstatOrUndefined(full: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(full);
  } catch (error) {
    if (isEnoent(error)) return undefined;
    throw error;
  }
}

/** fsync of a directory, so entries created or renamed in it survive a crash. */
export async function syncDirectory(full: string): Promise<void> {
  const handle = await open(full, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
