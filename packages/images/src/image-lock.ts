import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@service-foundry/core';

/**
 * Serialises builds of one tag on one Docker Engine across processes (test files run
 * concurrently and each may ask for the same image): the second caller waits, then finds
 * the tag built. A lock file holds the owner's pid; a lock whose owner died is taken over.
 */

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function tryAcquire(file: string, token: string): Promise<boolean> {
  try {
    await writeFile(file, token, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const owner = await readOwner(file);
  if (owner === undefined) return false;
  const pid = Number.parseInt(owner, 10);
  if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) {
    // Re-read right before removing so a lock just re-taken by a live process survives.
    if ((await readOwner(file)) === owner) await rm(file, { force: true });
  }
  return false;
}

export interface ImageLockOptions {
  /** Identifies what is locked: the Docker Engine plus the tag. */
  key: string;
  timeoutMs: number;
  /** Called once if the lock is busy, so the user knows why nothing happens. */
  onWait: () => void;
  signal?: AbortSignal;
}

export async function withImageLock<T>(options: ImageLockOptions, work: () => Promise<T>): Promise<T> {
  const digest = createHash('sha256').update(options.key).digest('hex').slice(0, 16);
  const file = join(tmpdir(), `service-foundry-image-${digest}.lock`);
  const token = `${process.pid}\n${options.key}\n${Date.now()}-${Math.random()}\n`;
  let warned = false;
  const waitOptions = {
    description: `the build lock ${file} of ${options.key}, held by another build`,
    timeoutMs: options.timeoutMs,
    intervalMs: 500,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  await waitFor(async () => {
    if (await tryAcquire(file, token)) return true;
    if (!warned) {
      warned = true;
      options.onWait();
    }
    return false;
  }, waitOptions);
  try {
    return await work();
  } finally {
    if ((await readOwner(file)) === token) await rm(file, { force: true });
  }
}
