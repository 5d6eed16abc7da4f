import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Owners whose files may be executed: root and the user this process runs as. */
function trustedOwners(): ReadonlySet<number> {
  return new Set([0, process.getuid?.() ?? 0]);
}

function modeText(stats: Stats): string {
  return `0${(stats.mode & 0o7777).toString(8)}`;
}

/**
 * Why `stats` (of `path`) must not be trusted, or undefined when it may be: owned by
 * someone else, or writable by its group or everyone. A world-writable directory with the
 * sticky bit (`/tmp`) is accepted as an ancestor only: there, nobody can rename or
 * replace an entry they do not own.
 */
function distrust(path: string, stats: Stats, allowSticky: boolean): string | undefined {
  if (!trustedOwners().has(stats.uid)) {
    return `${path} is owned by uid ${stats.uid}, not by root or by the user the platform runs as`;
  }
  const sticky = (stats.mode & 0o1000) !== 0;
  if ((stats.mode & 0o022) !== 0 && !(allowSticky && sticky && stats.isDirectory())) {
    return `${path} is writable by its group or by everyone (mode ${modeText(stats)})`;
  }
  return undefined;
}

/**
 * Why the executable at `path` (a real path: no symlinks) must not be run, or undefined:
 * it must be a regular file with an execute bit, owned by root or this user and writable
 * by nobody else, in a directory held the same way, under ancestors that nobody else can
 * rename (same rule, sticky world-writable directories allowed). Otherwise someone
 * without root could change what the controller runs as root.
 */
export async function untrustedExecutable(path: string): Promise<string | undefined> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    return `${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  if (!stats.isFile()) return `${path} is not a regular file`;
  if ((stats.mode & 0o111) === 0) return `${path} is not executable (mode ${modeText(stats)})`;
  const fileProblem = distrust(path, stats, false);
  if (fileProblem) return fileProblem;
  let dir = dirname(path);
  let allowSticky = false;
  for (;;) {
    const dirStats = await stat(dir);
    const problem = distrust(dir, dirStats, allowSticky);
    if (problem) return problem;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
    allowSticky = true;
  }
}

/**
 * Why the data file at `path` must not be trusted to say what to run, or undefined: the
 * same rule as {@link untrustedExecutable} without the execute bit (a regular file, owned
 * by root or this user, writable by nobody else, in directories held the same way).
 */
export async function untrustedDataFile(path: string): Promise<string | undefined> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    return `${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  if (!stats.isFile()) return `${path} is not a regular file`;
  const fileProblem = distrust(path, stats, false);
  if (fileProblem) return fileProblem;
  let dir = dirname(path);
  let allowSticky = false;
  for (;;) {
    const problem = distrust(dir, await stat(dir), allowSticky);
    if (problem) return problem;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
    allowSticky = true;
  }
}
