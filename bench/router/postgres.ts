/**
 * The bench's database: the catalog's Postgres image, run with the plan's memory but no CPU
 * limit (the `small` plan's 0.5 CPU would cap every workload at the database and hide what
 * the proxies cost), reached on its bridge address so that no Docker userland proxy sits in
 * any path. The admin password is a file mounted where the image expects its secrets, and
 * pgbench reads it from a libpq password file: never an environment variable or argument.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Catalog, waitFor } from '@service-foundry/core';

const run = promisify(execFile);

export interface BenchPostgres {
  /** The container's bridge address and port. */
  host: string;
  port: number;
  user: string;
  database: string;
  /** Environment for libpq clients (`PGPASSFILE`, the file's path, not the password). */
  clientEnv: NodeJS.ProcessEnv;
  /** Removes the container (its anonymous volume too). */
  stop(): Promise<void>;
}

/**
 * Starts the catalog's Postgres in `dir` (a private temp dir the caller removes), waits for
 * readiness and initialises pgbench's tables at `scale`.
 */
export async function startPostgres(dir: string, scale: number): Promise<BenchPostgres> {
  const entry = (await Catalog.load()).byServiceName('postgres');
  if (!entry) throw new Error('the catalog has no postgres entry');
  const { runtime } = entry;
  try {
    await run('docker', ['image', 'inspect', '-f', '{{.Id}}', runtime.image]);
  } catch {
    throw new Error(`image ${runtime.image} is missing: build it with \`node packages/cli/dist/main.js images build\``);
  }
  const password = randomBytes(18).toString('hex');
  const secrets = join(dir, 'secrets');
  await mkdir(secrets, { mode: 0o700 });
  const passwordFile = join(secrets, 'admin-password');
  await writeFile(passwordFile, password, { mode: 0o400 });
  await chown(passwordFile, runtime.secretFiles.uid, runtime.secretFiles.gid);
  await chown(secrets, runtime.secretFiles.uid, runtime.secretFiles.gid);
  await chmod(secrets, 0o500);
  const pgpass = join(dir, 'pgpass');
  await writeFile(pgpass, `*:*:*:${runtime.adminUser}:${password}\n`, { mode: 0o600 });

  const name = `sf-bench-router-pg-${randomBytes(4).toString('hex')}`;
  const envArgs = Object.entries({
    ...runtime.env,
    [runtime.adminPasswordFileEnv]: `${runtime.secretFiles.dir}/admin-password`,
    // Room for 64 clients plus connection-per-transaction churn through every proxy.
    SF_MAX_CONNECTIONS: '200',
  }).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
  await run('docker', [
    'run',
    '-d',
    '--name',
    name,
    '--memory',
    '1g',
    '--shm-size',
    '256m',
    '-v',
    `${secrets}:${runtime.secretFiles.dir}:ro`,
    ...envArgs,
    runtime.image,
  ]);
  const stop = async () => {
    await run('docker', ['rm', '-f', '-v', name]).catch(() => {});
  };
  try {
    const { stdout } = await run('docker', [
      'inspect',
      '-f',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
      name,
    ]);
    const host = stdout.trim().split(' ')[0] ?? '';
    if (!host) throw new Error(`container ${name} has no bridge address`);
    await waitFor(
      async () => {
        await run('docker', ['exec', name, ...runtime.readiness.exec]);
        return true;
      },
      { description: 'postgres ready', timeoutMs: runtime.readiness.timeoutSeconds * 1000, intervalMs: 300 },
    );
    const database = runtime.env.SF_DATABASE ?? 'postgres';
    const clientEnv = { ...process.env, PGPASSFILE: pgpass };
    // The entrypoint restarts the server once after initdb: wait until TCP logins work.
    await waitFor(
      async () => {
        await run('psql', ['-h', host, '-U', runtime.adminUser, '-d', database, '-Atc', 'SELECT 1'], {
          env: clientEnv,
        });
        return true;
      },
      { description: 'postgres accepting TCP logins', timeoutMs: 60_000, intervalMs: 300 },
    );
    await run('pgbench', ['-i', '-q', '-s', String(scale), '-h', host, '-U', runtime.adminUser, database], {
      env: clientEnv,
    });
    return { host, port: runtime.port, user: runtime.adminUser, database, clientEnv, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
