import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { buildManifest } from './build-manifest.js';
import type { TransferLimits } from './config.js';
import type { Manifest } from './manifest.js';
import { parseManifest } from './manifest-check.js';
import { rememberedManifest, rememberManifest } from './manifest-hint.js';
import { isManifestId } from './protocol.js';
import { lstatOrUndefined, syncDirectory } from './safe-fs.js';
import { StatCache } from './stat-cache.js';

/** Manifests kept per volume for deltas: the pre-copy's and a few before it. */
const keptManifests = 4;

/**
 * The private folder beside a volume directory (`<dir>.sf-transfer`, same file system, so
 * renames are atomic): the staging copy being received, the previous copy during a swap,
 * the stat cache and the manifests recently sent or received.
 */
export interface WorkDir {
  volumeDir: string;
  root: string;
  staging: string;
  /** Exists only between the two renames of a swap, or after a crash there. */
  previous: string;
  /** Written when staging is complete and verified, removed after the swap. */
  completeMarker: string;
  cacheFile: string;
  manifests: string;
}

export function workDirFor(volumeDir: string): WorkDir {
  const root = `${volumeDir}.sf-transfer`;
  return {
    volumeDir,
    root,
    staging: join(root, 'staging'),
    previous: join(root, 'previous'),
    completeMarker: join(root, 'staging-complete'),
    cacheFile: join(root, 'stat-cache.json'),
    manifests: join(root, 'manifests'),
  };
}

/** Writes a file atomically (temporary name, then rename) so a crash never leaves half of it. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await rename(temporary, path);
}

/**
 * Creates the work folder (0700) and finishes or undoes a swap a crash interrupted: with
 * the volume directory missing, the verified staging copy goes in when it was marked
 * complete, otherwise the previous copy goes back. Leftover staging is removed.
 */
export async function prepareWorkDir(work: WorkDir): Promise<void> {
  await mkdir(work.root, { recursive: true, mode: 0o700 });
  const rootStats = await lstat(work.root);
  if (!rootStats.isDirectory()) throw new InvalidInputError(`${work.root} is not a directory`);
  const volumeStats = await lstatOrUndefined(work.volumeDir);
  if (volumeStats && !volumeStats.isDirectory()) throw new InvalidInputError(`${work.volumeDir} is not a directory`);
  const complete = (await lstatOrUndefined(work.completeMarker)) !== undefined;
  if (!volumeStats) {
    if (complete && (await lstatOrUndefined(work.staging))) await rename(work.staging, work.volumeDir);
    else if (await lstatOrUndefined(work.previous)) await rename(work.previous, work.volumeDir);
  }
  await rm(work.completeMarker, { force: true });
  await rm(work.previous, { recursive: true, force: true });
  await rm(work.staging, { recursive: true, force: true });
  for (const name of await readdir(work.root)) {
    if (name.startsWith('trash-')) await rm(join(work.root, name), { recursive: true, force: true });
  }
}

/**
 * Puts the verified staging copy in place of the volume directory: mark complete, move
 * the old copy aside, move the new one in, sync the parents. Node has no
 * renameat2(RENAME_EXCHANGE); between the two renames the directory is briefly absent,
 * and prepareWorkDir repairs a crash in that gap. The old copy is renamed to a unique
 * `trash-*` name and deleted in the background (a large tree takes a while to unlink, and
 * a relocation waits for this call); prepareWorkDir finishes what a crash interrupted.
 */
export async function swapIn(work: WorkDir, fsync: boolean): Promise<void> {
  await writeFile(work.completeMarker, '');
  if (fsync) await syncDirectory(work.root);
  const hadCopy = (await lstatOrUndefined(work.volumeDir)) !== undefined;
  if (hadCopy) await rename(work.volumeDir, work.previous);
  await rename(work.staging, work.volumeDir);
  if (fsync) {
    await syncDirectory(dirname(work.volumeDir));
    await syncDirectory(work.root);
  }
  await rm(work.completeMarker, { force: true });
  if (hadCopy) {
    const trash = join(work.root, `trash-${randomBytes(6).toString('hex')}`);
    await rename(work.previous, trash);
    void rm(trash, { recursive: true, force: true }).catch(() => undefined);
  }
}

export async function loadCache(work: WorkDir): Promise<StatCache> {
  try {
    return StatCache.fromJSON(JSON.parse(await readFile(work.cacheFile, 'utf8')));
  } catch {
    return new StatCache();
  }
}

export async function saveCache(work: WorkDir, cache: StatCache): Promise<void> {
  await writeAtomically(work.cacheFile, JSON.stringify(cache));
}

/** Keeps a manifest so a later request can ask for a delta against it; drops the oldest. */
export async function storeManifest(work: WorkDir, manifest: Manifest): Promise<void> {
  await mkdir(work.manifests, { recursive: true, mode: 0o700 });
  await writeAtomically(join(work.manifests, `${manifest.id}.json`), JSON.stringify(manifest));
  const names = (await readdir(work.manifests)).filter((name) => /^[0-9a-f]{64}\.json$/.test(name));
  if (names.length <= keptManifests) return;
  const dated = await Promise.all(
    names.map(async (name) => ({ name, at: (await stat(join(work.manifests, name))).mtimeMs })),
  );
  dated.sort((a, b) => b.at - a.at);
  for (const old of dated.slice(keptManifests)) await rm(join(work.manifests, old.name), { force: true });
}

/** A kept manifest by id, validated; undefined when it is not (or no longer) kept. */
export async function loadManifest(work: WorkDir, id: string, limits: TransferLimits): Promise<Manifest | undefined> {
  if (!isManifestId(id)) return undefined;
  const file = join(work.manifests, `${id}.json`);
  // Still kept (the window of kept manifests decides what a delta may be against), and
  // already parsed and validated in memory: no need to do it again.
  const remembered = rememberedManifest(work.volumeDir, id);
  if (remembered && (await lstatOrUndefined(file))) return remembered;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const manifest = parseManifest(JSON.parse(text), limits, `kept manifest ${id}`);
    return manifest.id === id ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The manifest of the volume directory as it is now, using and refreshing the stat cache
 * (cheap when nothing moved). Undefined when the directory does not exist. Kept, so a
 * peer may ask for a delta against it.
 */
export async function currentManifest(work: WorkDir): Promise<Manifest | undefined> {
  if (!(await lstatOrUndefined(work.volumeDir))) return undefined;
  const cache = await loadCache(work);
  const manifest = await buildManifest(work.volumeDir, { cache });
  await Promise.all([saveCache(work, cache), storeManifest(work, manifest)]);
  rememberManifest(work.volumeDir, manifest);
  return manifest;
}
