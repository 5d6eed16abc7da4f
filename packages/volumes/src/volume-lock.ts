import { resolve } from 'node:path';
import { ConflictError } from '@service-foundry/core';

const held = new Set<string>();

/**
 * Runs `work` while holding this process's lock on a volume directory: one transfer at a
 * time per directory (sending reads and updates its stat cache; receiving swaps it). A
 * second caller is refused at once rather than queued: the peer retries, and nothing
 * waits behind a stalled transfer. The lock is per process; one agent owns a directory.
 */
export async function withVolumeLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const key = resolve(dir);
  if (held.has(key)) throw new ConflictError(`volume directory ${key} is busy with another transfer`);
  held.add(key);
  try {
    return await work();
  } finally {
    held.delete(key);
  }
}
