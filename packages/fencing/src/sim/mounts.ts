import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Mount points at or under `roots`, deepest first (mountinfo escapes spaces and such as octal). */
export async function mountsUnder(roots: readonly string[]): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => Boolean(p))
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8))));
  return points
    .filter((p) => roots.some((root) => p === root || p.startsWith(`${root}/`)))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmounts what a dockerd that lost its power left mounted under `roots` (container root
 * file systems, shm, netns files), so the folders can be emptied. Lazy: nothing uses them
 * any more. Returns how many there were.
 */
export async function unmountUnder(roots: readonly string[]): Promise<number> {
  const points = await mountsUnder(roots);
  for (const point of points) await run('umount', ['-l', point], { timeout: 30_000 }).catch(() => undefined);
  return points.length;
}
