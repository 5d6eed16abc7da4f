import { InvalidInputError } from '@service-foundry/core';
import type { TransferLimits } from './config.js';
import { type Manifest, type ManifestEntry, makeManifest, manifestId, type SkippedEntry } from './manifest.js';
import { parentOf, symlinkTargetProblem, volumePathProblem } from './paths.js';
import { isManifestId, manifestFormat } from './protocol.js';

const sha256Pattern = /^[0-9a-f]{64}$/;
const maxSymlinkHops = 40;

function isUint(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

function entryProblem(raw: unknown, limits: TransferLimits): string | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'entry is not an object';
  const e = raw as Record<string, unknown>;
  const allowed = new Set(['path', 'type', 'size', 'mode', 'uid', 'gid', 'mtimeMs', 'target', 'sha256']);
  const unknown = Object.keys(e).find((key) => !allowed.has(key));
  if (unknown) return `unknown field ${JSON.stringify(unknown)}`;
  if (typeof e.path !== 'string') return 'path is not a string';
  const pathProblem = volumePathProblem(e.path, limits);
  if (pathProblem) return pathProblem;
  if (e.type !== 'file' && e.type !== 'directory' && e.type !== 'symlink')
    return 'type is not file, directory or symlink';
  if (!isUint(e.size) || (e.type !== 'file' && e.size !== 0)) return 'bad size';
  if (!isUint(e.mode, 0o7777)) return 'bad mode';
  if (!isUint(e.uid, 0xffffffff) || !isUint(e.gid, 0xffffffff)) return 'bad uid or gid';
  if (typeof e.mtimeMs !== 'number' || !Number.isSafeInteger(e.mtimeMs)) return 'bad mtimeMs';
  if (e.type === 'file') {
    if (typeof e.sha256 !== 'string' || !sha256Pattern.test(e.sha256)) return 'file without a sha256';
    if (e.target !== undefined) return 'file with a target';
    if (!limits.allowSetuidFiles && (e.mode & 0o6000) !== 0) return 'setuid or setgid file';
  } else if (e.sha256 !== undefined) {
    return `${e.type} with a sha256`;
  }
  if (e.type === 'symlink') {
    if (typeof e.target !== 'string') return 'symlink without a target';
    return symlinkTargetProblem(e.path, e.target, limits);
  }
  if (e.target !== undefined) return `${e.type} with a target`;
  return undefined;
}

/**
 * Follows `target` from `dir` through the manifest's own symlinks, the way the kernel
 * would, and says whether it ever climbs above the root. String checks alone miss
 * `a/up -> ..` followed by `x -> a/up/..`, which resolves to the volume's parent.
 */
function resolvesOutside(
  links: Map<string, string>,
  dir: string[],
  target: string,
  hops: number,
): string[] | 'outside' {
  if (hops > maxSymlinkHops || target.startsWith('/')) return 'outside';
  const stack = [...dir];
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return 'outside';
      stack.pop();
      continue;
    }
    stack.push(part);
    const next = links.get(stack.join('/'));
    if (next !== undefined) {
      stack.pop();
      const resolved = resolvesOutside(links, stack, next, hops + 1);
      if (resolved === 'outside') return 'outside';
      stack.length = 0;
      stack.push(...resolved);
    }
  }
  return stack;
}

/** The first symlink in `entries` that resolves outside the volume, if any. */
export function findEscapingSymlink(entries: readonly ManifestEntry[]): ManifestEntry | undefined {
  const links = new Map<string, string>();
  for (const entry of entries)
    if (entry.type === 'symlink' && entry.target !== undefined) links.set(entry.path, entry.target);
  for (const entry of entries) {
    if (entry.type !== 'symlink' || entry.target === undefined) continue;
    const parent = parentOf(entry.path);
    const dir = parent === '.' ? [] : parent.split('/');
    if (resolvesOutside(links, dir, entry.target, 0) === 'outside') return entry;
  }
  return undefined;
}

/**
 * Validates a manifest that came from elsewhere (a peer's trailer, a state file): shape,
 * every path and symlink, tree structure (the root first, each parent a directory listed
 * before its children, no duplicates), limits, and that its id is the digest of its
 * entries. Returns a fresh, trusted Manifest.
 */
export function parseManifest(raw: unknown, limits: TransferLimits, what = 'manifest'): Manifest {
  const fail = (problem: string): never => {
    throw new InvalidInputError(`${what} refused`, [problem]);
  };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return fail('not an object');
  const m = raw as Record<string, unknown>;
  if (m.format !== manifestFormat) fail(`format is not ${manifestFormat}`);
  if (typeof m.id !== 'string' || !isManifestId(m.id)) fail('id is not a sha256 hex digest');
  if (!Array.isArray(m.entries)) return fail('entries is not an array');
  if (m.entries.length > limits.maxEntries) fail(`more than ${limits.maxEntries} entries`);
  const types = new Map<string, ManifestEntry['type']>();
  const entries: ManifestEntry[] = [];
  let bytes = 0;
  for (const [index, rawEntry] of m.entries.entries()) {
    const problem = entryProblem(rawEntry, limits);
    const label = (rawEntry as { path?: unknown } | null)?.path;
    if (problem) fail(`entry ${index} (${JSON.stringify(label)}): ${problem}`);
    const e = rawEntry as ManifestEntry;
    if (index === 0 && (e.path !== '.' || e.type !== 'directory')) fail('the first entry is not the root directory');
    if (types.has(e.path)) fail(`duplicate entry ${JSON.stringify(e.path)}`);
    if (e.path !== '.' && types.get(parentOf(e.path)) !== 'directory') {
      fail(`${JSON.stringify(e.path)} is not inside a directory listed before it`);
    }
    types.set(e.path, e.type);
    bytes += e.size;
    if (bytes > limits.maxTotalBytes) fail(`files add up to more than ${limits.maxTotalBytes} bytes`);
    const entry: ManifestEntry = {
      path: e.path,
      type: e.type,
      size: e.size,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtimeMs: e.mtimeMs,
    };
    if (e.target !== undefined) entry.target = e.target;
    if (e.sha256 !== undefined) entry.sha256 = e.sha256;
    entries.push(entry);
  }
  if (entries.length === 0) fail('no root entry');
  const escaping = findEscapingSymlink(entries);
  if (escaping) fail(`symlink ${JSON.stringify(escaping.path)} resolves outside the volume (or loops)`);
  if (manifestId(entries) !== m.id) fail('id does not match the entries');
  const skipped: SkippedEntry[] = [];
  if (Array.isArray(m.skipped)) {
    for (const s of m.skipped.slice(0, 10_000)) {
      const item = s as Record<string, unknown> | null;
      if (item && typeof item.path === 'string' && typeof item.reason === 'string') {
        skipped.push({ path: item.path.slice(0, 4096), reason: item.reason.slice(0, 200) });
      }
    }
  }
  return makeManifest(entries, skipped);
}
