import { InvalidInputError } from '@service-foundry/core';
import type { TransferLimits } from './config.js';

/**
 * Path rules for everything that names a place inside a volume: tar entry names, hardlink
 * targets, manifest paths. Only one spelling of each path is accepted (relative, `/`
 * separated, no `.`, `..` or empty components, `.` alone for the root), so two different
 * strings can never name the same file and a name can never leave the volume.
 */

export type PathLimits = Pick<TransferLimits, 'maxPathBytes' | 'maxNameBytes'>;

/** Why `path` is not an acceptable volume path, or undefined when it is. */
export function volumePathProblem(path: string, limits: PathLimits): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'empty path';
  if (path.includes('\0')) return 'path contains a NUL byte';
  if (path === '.') return undefined;
  if (path.startsWith('/')) return 'absolute path';
  const parts = path.split('/');
  if (parts.includes('..')) return "path has a '..' component";
  if (parts.some((part) => part === '' || part === '.')) return "path is not canonical (empty or '.' component)";
  if (Buffer.byteLength(path) > limits.maxPathBytes) return `path longer than ${limits.maxPathBytes} bytes`;
  if (parts.some((part) => Buffer.byteLength(part) > limits.maxNameBytes)) {
    return `path component longer than ${limits.maxNameBytes} bytes`;
  }
  return undefined;
}

/** The path itself when acceptable; otherwise an InvalidInputError naming the entry and the rule. */
export function checkVolumePath(path: string, limits: PathLimits, what = 'entry'): string {
  const problem = volumePathProblem(path, limits);
  if (problem) throw new InvalidInputError(`${what} ${JSON.stringify(path)} refused`, [problem]);
  return path;
}

/**
 * A tar entry name in canonical form: tar writes directories with a trailing `/` and the
 * root as `./`; those are the only liberties accepted.
 */
export function tarNameToVolumePath(name: string, isDirectory: boolean, limits: PathLimits): string {
  let path = name;
  if (isDirectory && path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return checkVolumePath(path, limits);
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '.' : path.slice(0, slash);
}

/** Ancestors of `path` from the outermost down, excluding the root and the path itself. */
export function ancestorsOf(path: string): string[] {
  if (path === '.') return [];
  const parts = path.split('/');
  const result: string[] = [];
  for (let i = 1; i < parts.length; i++) result.push(parts.slice(0, i).join('/'));
  return result;
}

/** Depth in the tree (root 0), for ordering removals deepest first. */
export function depthOf(path: string): number {
  return path === '.' ? 0 : path.split('/').length;
}

/**
 * Why a symlink at `path` pointing at `target` is not acceptable, judged on the strings
 * alone: empty, too long, absolute, or `..` climbing above the volume's root when resolved
 * from the link's own directory. Chains through other symlinks are judged on the whole
 * manifest by findEscapingSymlink.
 */
export function symlinkTargetProblem(
  path: string,
  target: string,
  limits: Pick<TransferLimits, 'maxLinkTargetBytes'>,
): string | undefined {
  if (typeof target !== 'string' || target.length === 0) return 'empty symlink target';
  if (target.includes('\0')) return 'symlink target contains a NUL byte';
  if (Buffer.byteLength(target) > limits.maxLinkTargetBytes) {
    return `symlink target longer than ${limits.maxLinkTargetBytes} bytes`;
  }
  if (target.startsWith('/')) return 'symlink target is absolute';
  const stack = path === '.' ? [] : parentOf(path) === '.' ? [] : parentOf(path).split('/');
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return 'symlink target leaves the volume';
      stack.pop();
    } else {
      stack.push(part);
    }
  }
  return undefined;
}
