import { randomFill } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@service-foundry/core';
import { racyWindowMs } from '../../packages/volumes/src/index.js';

const fill = promisify(randomFill);
const mib = 1024 * 1024;

/** Writes `bytes` of incompressible data as a file; random bytes come from the OS CSPRNG. */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'w');
  try {
    const buffer = Buffer.allocUnsafe(Math.min(bytes, 4 * mib));
    for (let left = bytes; left > 0; left -= buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, left));
      await fill(chunk);
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
}

/**
 * A 1 GiB volume shaped like a database's: 64 large files of 8 MiB (table segments) and
 * 512 files of 1 MiB in 16 folders (indexes, small relations). Returns the file paths.
 */
export async function makeGibVolume(dir: string): Promise<string[]> {
  const files: string[] = [];
  await mkdir(join(dir, 'segments'), { recursive: true });
  for (let i = 0; i < 64; i++) {
    const path = join(dir, 'segments', `seg-${i}`);
    await writeRandomFile(path, 8 * mib);
    files.push(path);
  }
  for (let d = 0; d < 16; d++) {
    await mkdir(join(dir, `rel-${d}`), { recursive: true });
    for (let i = 0; i < 32; i++) {
      const path = join(dir, `rel-${d}`, `file-${i}`);
      await writeRandomFile(path, mib);
      files.push(path);
    }
  }
  return files;
}

export const gib = 1024 * mib;
export { mib };

/** Lets files written now age past the sender's racy window, so its stat cache trusts them. */
export async function outlastRacyWindow(): Promise<void> {
  const until = Date.now() + racyWindowMs + 50;
  await waitFor(() => Date.now() >= until, { description: 'the racy window to pass', intervalMs: 20 });
}
