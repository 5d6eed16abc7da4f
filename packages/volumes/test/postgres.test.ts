import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { Catalog, waitFor } from '@service-foundry/core';
import { pullSnapshot } from '../src/index.js';
import { fingerprint, outlastRacyWindow, startTestServer, testSecret } from './helpers.js';

const run = promisify(execFile);
// The catalog names the image (its tag moves when the recipe changes).
const image = (await Catalog.load()).byServiceName('postgres')?.runtime.image ?? 'missing-postgres-catalog-entry';
const dataPath = '/var/lib/postgresql/data';

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run('docker', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Removes, after the test, every container and then every volume carrying the test's label. */
function cleanUpLabel(t: TestContext, label: string): void {
  t.after(async () => {
    const containers = await docker('ps', '--all', '--quiet', '--filter', `label=sf.test=${label}`);
    for (const id of containers.split('\n').filter(Boolean)) await docker('rm', '--force', id);
    await waitFor(
      async () => {
        const volumes = (await docker('volume', 'ls', '--quiet', '--filter', `label=sf.test=${label}`)).split('\n');
        for (const name of volumes.filter(Boolean)) await docker('volume', 'rm', name);
        return true;
      },
      { description: `volumes labelled ${label} to be removed`, timeoutMs: 30_000, intervalMs: 250 },
    );
  });
}

/** A labelled Docker volume; its host directory (we run as root, like the agent). */
async function createVolume(label: string, name: string): Promise<string> {
  await docker('volume', 'create', '--label', `sf.test=${label}`, name);
  return docker('volume', 'inspect', '--format', '{{.Mountpoint}}', name);
}

/** Starts Postgres on `volume` the way the agent does (catalog env, stop signal from the image). */
async function startPostgres(label: string, volume: string): Promise<string> {
  const id = await docker(
    'run',
    '--detach',
    '--label',
    `sf.test=${label}`,
    '--env',
    'POSTGRES_PASSWORD=test-password',
    '--env',
    `PGDATA=${dataPath}/pgdata`,
    '--env',
    'SF_DATABASE=sf',
    '--env',
    'TZ=UTC',
    '--mount',
    `type=volume,source=${volume},target=${dataPath}`,
    image,
  );
  await waitFor(
    async () => {
      await docker('exec', id, 'pg_isready', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'sf');
      return true;
    },
    { description: `postgres in ${id.slice(0, 12)} to accept connections`, timeoutMs: 60_000, intervalMs: 200 },
  );
  return id;
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

test('a real Postgres data directory moves to a new volume and the new server reads every row', async (t) => {
  const images = await docker('images', '--quiet', image);
  assert.ok(images, `image ${image} is missing: run \`node packages/cli/dist/main.js images build\``);
  const label = `volumes-${testSecret().slice(0, 8)}`;
  cleanUpLabel(t, label);
  const sourceDir = await createVolume(label, `${label}-source`);
  const targetDir = await createVolume(label, `${label}-target`);
  const secret = testSecret();
  const server = await startTestServer(t, secret, { pg: sourceDir });

  const first = await startPostgres(label, `${label}-source`);
  await psql(
    first,
    "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 20000) g;",
  );
  await docker('stop', '--time', '30', first);
  await outlastRacyWindow();

  const full = await pullSnapshot({ url: server.url, secret, name: 'pg', into: targetDir, fsync: true });
  assert.equal(full.mode, 'full');
  t.diagnostic(`full copy: ${full.files} files, ${full.bytes} bytes, ${full.durationMs} ms`);
  assert.ok(full.files > 500, `a Postgres cluster has many files (${full.files})`);
  assert.equal(await fingerprint(targetDir, { dirMtimes: true }), await fingerprint(sourceDir, { dirMtimes: true }));

  // The relocation pattern: the service wrote more since the first copy; a delta catches up.
  await docker('start', first);
  await waitFor(
    async () => {
      await docker('exec', first, 'pg_isready', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'sf');
      return true;
    },
    { description: 'postgres to come back', timeoutMs: 60_000, intervalMs: 200 },
  );
  await psql(first, "INSERT INTO items SELECT g, 'late ' || g FROM generate_series(20001, 20500) g;");
  await docker('stop', '--time', '30', first);
  await outlastRacyWindow();
  const delta = await pullSnapshot({ url: server.url, secret, name: 'pg', into: targetDir, fsync: true });
  assert.equal(delta.mode, 'delta');
  t.diagnostic(`delta: ${delta.files} files, ${delta.bytes} bytes, ${delta.deleted} deleted, ${delta.durationMs} ms`);
  assert.ok(delta.bytes < full.bytes / 2, `the delta (${delta.bytes} bytes) is a fraction of the copy (${full.bytes})`);
  assert.ok(delta.files < full.files / 4, `${delta.files} of ${full.files} files changed`);

  const second = await startPostgres(label, `${label}-target`);
  assert.equal(await psql(second, 'SELECT count(*), sum(id) FROM items'), `20500|${(20500 * 20501) / 2}`);
  assert.equal(await psql(second, 'SELECT note FROM items WHERE id = 20500'), 'late 20500');
  await psql(second, "INSERT INTO items VALUES (30000, 'written on the new volume')");
  assert.equal(await psql(second, 'SELECT count(*) FROM items'), '20501');
});
