import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Catalog, freePort, waitFor } from '@service-foundry/core';
import { pullSnapshot, type TransferResult } from '../../packages/volumes/src/index.js';
import { startServerProcess } from './server-process.js';
import { run } from './shell.js';
import { gib, makeGibVolume, outlastRacyWindow } from './volume-data.js';

// The catalog names the image (its tag moves when the recipe changes).
const image = (await Catalog.load()).byServiceName('postgres')?.runtime.image ?? 'missing-postgres-catalog-entry';
const dataPath = '/var/lib/postgresql/data';

export interface DowntimeFigures {
  /** Service stopped → the target accepts connections (the definition). */
  downtimeSeconds: number;
  /** `docker stop` of the source (Postgres' shutdown checkpoint). */
  stopSeconds: number;
  finalDelta: TransferResult;
  /** Target container start → accepting connections. */
  startSeconds: number;
  preCopy: TransferResult;
  rows: string;
}

function seconds(from: bigint): number {
  return Number(process.hrtime.bigint() - from) / 1e9;
}

async function docker(...args: string[]): Promise<string> {
  return run('docker', args);
}

function containerArgs(label: string, volume: string, port: number): string[] {
  return [
    '--label',
    `sf.bench=${label}`,
    '--env',
    'POSTGRES_PASSWORD=bench-password',
    '--env',
    `PGDATA=${dataPath}/pgdata`,
    '--env',
    'SF_DATABASE=sf',
    '--env',
    'TZ=UTC',
    '--publish',
    `127.0.0.1:${port}:5432`,
    '--mount',
    `type=volume,source=${volume},target=${dataPath}`,
    image,
  ];
}

async function accepting(port: number): Promise<boolean> {
  try {
    await run('pg_isready', ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'sf', '-t', '1']);
    return true;
  } catch {
    return false;
  }
}

function psql(container: string, sql: string): Promise<string> {
  return docker(
    'exec',
    container,
    'psql',
    '-X',
    '-q',
    '-At',
    '-v',
    'ON_ERROR_STOP=1',
    '-U',
    'postgres',
    '-d',
    'sf',
    '-c',
    sql,
  );
}

/**
 * A planned relocation of a real Postgres whose volume holds 1 GiB: pre-copy while it
 * runs, ~10 MB written, then stop → final delta → start on the target volume, timed until
 * the target accepts connections (pg_isready on its published port; the router and the
 * epoch bump of the real orchestration are not part of this figure yet).
 */
export async function measurePostgresRelocation(secret: string, log: (line: string) => void): Promise<DowntimeFigures> {
  const label = `bench-${randomBytes(4).toString('hex')}`;
  const source = `${label}-source`;
  const target = `${label}-target`;
  try {
    await docker('volume', 'create', '--label', `sf.bench=${label}`, source);
    await docker('volume', 'create', '--label', `sf.bench=${label}`, target);
    const sourceDir = await docker('volume', 'inspect', '--format', '{{.Mountpoint}}', source);
    const targetDir = await docker('volume', 'inspect', '--format', '{{.Mountpoint}}', target);
    const sourcePort = await freePort();
    const first = await docker('run', '--detach', ...containerArgs(label, source, sourcePort));
    await waitFor(() => accepting(sourcePort), { description: 'source postgres', timeoutMs: 60_000, intervalMs: 100 });
    await psql(first, 'CREATE TABLE items (id int PRIMARY KEY, payload text)');
    log('relocation: writing 1 GiB beside the cluster in the source volume');
    await mkdir(join(sourceDir, 'bulk'));
    await makeGibVolume(join(sourceDir, 'bulk'));
    await outlastRacyWindow();

    const server = await startServerProcess(sourceDir, secret);
    try {
      const preCopy = await pullSnapshot({ url: server.url, secret, name: 'bench', into: targetDir });
      log(
        `relocation: pre-copy while running: ${(preCopy.bytes / gib).toFixed(2)} GiB in ${(preCopy.durationMs / 1000).toFixed(2)} s`,
      );
      await psql(first, 'INSERT INTO items SELECT g, repeat(md5(random()::text), 8) FROM generate_series(1, 40000) g');
      const targetPort = await freePort();
      const second = await docker('create', ...containerArgs(label, target, targetPort));

      const stopAt = process.hrtime.bigint();
      await docker('stop', '--time', '30', first);
      const stopSeconds = seconds(stopAt);
      const stoppedAt = process.hrtime.bigint();
      const finalDelta = await pullSnapshot({ url: server.url, secret, name: 'bench', into: targetDir });
      const startAt = process.hrtime.bigint();
      await docker('start', second);
      await waitFor(() => accepting(targetPort), { description: 'target postgres', timeoutMs: 60_000, intervalMs: 10 });
      const downtimeSeconds = seconds(stoppedAt);
      const startSeconds = seconds(startAt);
      const rows = await psql(second, 'SELECT count(*) FROM items');
      return { downtimeSeconds, stopSeconds, finalDelta, startSeconds, preCopy, rows };
    } finally {
      await server.stop();
    }
  } finally {
    const containers = await docker('ps', '--all', '--quiet', '--filter', `label=sf.bench=${label}`);
    for (const id of containers.split('\n').filter(Boolean)) await docker('rm', '--force', id);
    const volumes = await docker('volume', 'ls', '--quiet', '--filter', `label=sf.bench=${label}`);
    for (const name of volumes.split('\n').filter(Boolean)) await docker('volume', 'rm', name);
  }
}
