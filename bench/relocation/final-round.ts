import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pullSnapshot } from '../../packages/volumes/src/index.js';
import { scanTree } from '../../packages/volumes/src/scan.js';
import { mib, outlastRacyWindow, writeRandomFile } from './volume-data.js';

const rounds = 3;
const smallFolders = 5;
const smallPerFolder = 250;
/** The WAL segment size of the catalog's Postgres image (initdb --wal-segsize=1). */
export const walSegmentBytes = 1 * mib;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

export interface FinalRoundFigures {
  entries: number;
  /** A pull after one WAL segment and three 8 KiB files changed, ms (median). */
  deltaMs: number;
  /** A pull with nothing changed: the fixed cost of a round, ms (median). */
  idleMs: number;
}

/**
 * The shape of a relocation's final round: a volume of ~1,850 entries (the 1 GiB of step 1
 * plus 1,250 files of 8 KiB, like a database's catalog), where the shutdown changed one
 * WAL segment and a few small files. Pulls with fsync, as the agent does; the fixed
 * cost (scans, staging, verification) is what a round costs when nothing changed.
 */
export async function measureFinalRound(
  source: string,
  target: string,
  server: { url: string },
  secret: string,
): Promise<FinalRoundFigures> {
  for (let d = 0; d < smallFolders; d++) {
    await mkdir(join(source, 'catalog', `d${d}`), { recursive: true });
    for (let i = 0; i < smallPerFolder; i++) {
      await writeFile(join(source, 'catalog', `d${d}`, `f${i}`), randomBytes(8192));
    }
  }
  await mkdir(join(source, 'wal'), { recursive: true });
  await writeRandomFile(join(source, 'wal', 'segment'), walSegmentBytes);
  await outlastRacyWindow();
  await pullSnapshot({ url: server.url, secret, name: 'bench', into: target });
  const delta: number[] = [];
  const idle: number[] = [];
  for (let round = 0; round < rounds; round++) {
    await writeRandomFile(join(source, 'wal', 'segment'), walSegmentBytes);
    for (let i = 0; i < 3; i++) await writeFile(join(source, 'catalog', 'd0', `f${i}`), randomBytes(8192));
    await outlastRacyWindow();
    delta.push((await pullSnapshot({ url: server.url, secret, name: 'bench', into: target })).durationMs);
    idle.push((await pullSnapshot({ url: server.url, secret, name: 'bench', into: target })).durationMs);
  }
  return { entries: (await scanTree(source)).entries.length, deltaMs: median(delta), idleMs: median(idle) };
}
