import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import type Dockerode from 'dockerode';
import { ensureBaseImage, ensureCatalogImages, ensureServiceImage, formatSize } from '../src/index.js';
import { createServiceContainer, secretPaths } from './service-containers.js';

/**
 * Builds (first run, ~1–2 min) or reuses the base and Postgres images, then checks what
 * the platform relies on: a fresh volume gets a cluster with the admin password (a file),
 * the role layout bindings rely on, the binding recipe of service.json run with the host's
 * real psql (keys share the app's data; unbinding keeps it while locking the user out).
 */

const maxImageBytes = 150 * 1024 * 1024;

interface PsqlResult {
  code: number;
  stdout: string;
  stderr: string;
}

function psql(
  port: number,
  user: string,
  password: string,
  statements: string[],
  database = 'sf',
): Promise<PsqlResult> {
  const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user];
  args.push('-d', database, ...statements.flatMap((sql) => ['-c', sql]));
  // The admin's sessions, like the platform's, never resolve names in a schema bindings write.
  const env = { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10', PGOPTIONS: '' };
  if (user === 'postgres') env.PGOPTIONS = '-c search_path=pg_catalog,pg_temp';
  return new Promise((resolve) => {
    execFile('/usr/bin/psql', args, { env, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

async function psqlOk(port: number, user: string, password: string, statements: string[]): Promise<string> {
  const result = await psql(port, user, password, statements);
  assert.equal(result.code, 0, `psql as ${user} failed: ${result.stderr}`);
  return result.stdout;
}

/** Runs a command in the container; its exit code (null while Docker has none yet). */
async function execExitCode(container: Dockerode.Container, command: string[]): Promise<number | null> {
  const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  stream.resume();
  await once(stream, 'end');
  return (await exec.inspect()).ExitCode;
}

/** Waits for the readiness command of service.json; gives up early when the container dies. */
async function awaitReady(container: Dockerode.Container, entry: CatalogEntry): Promise<number> {
  const started = Date.now();
  await waitFor(
    async () => {
      const state = (await container.inspect()).State;
      if (!state.Running) {
        const logs = await container.logs({ stdout: true, stderr: true, tail: 30 });
        throw new Error(`container exited with ${state.ExitCode}:\n${logs.toString()}`);
      }
      return (await execExitCode(container, entry.runtime.readiness.exec)) === 0;
    },
    {
      description: 'pg_isready in the container',
      timeoutMs: entry.runtime.readiness.timeoutSeconds * 1000,
      intervalMs: 200,
    },
  );
  return Date.now() - started;
}

/**
 * The recipe's statements with their placeholders filled. The broker gives
 * `{{passwordVerifier}}` a SCRAM verifier of the password (its own test checks that);
 * Postgres takes the clear password in its place, which is enough to test the image.
 */
function fillBinding(statements: string[], values: Record<'username' | 'password' | 'database', string>): string[] {
  const filled: Record<string, string> = { ...values, passwordVerifier: values.password };
  return statements.map((sql) => sql.replace(/\{\{(\w+)\}\}/g, (_, key: string) => filled[key] ?? `{{${key}}}`));
}

test('postgres image: offline build, cached by tag, serves the binding recipe', { timeout: 20 * 60_000 }, async (t) => {
  const catalog = await Catalog.load();
  const entry = catalog.byServiceName('postgres');
  assert.ok(entry, 'services-catalog/postgres is in the catalog');
  const progress: string[] = [];
  const onProgress = (line: string) => {
    progress.push(line);
    // Build steps and summaries only; apt's own chatter stays in `progress` for failures.
    if (/Step \d+\/\d+|debootstrap:|base image|MB in/.test(line)) t.diagnostic(line);
  };

  const base = await ensureBaseImage({ docker, onProgress });
  const image = await ensureServiceImage(entry, { docker, onProgress });
  t.diagnostic(`base ${base.tag}: ${formatSize(base.sizeBytes)}, built=${base.built}, ${base.seconds} s`);
  t.diagnostic(`image ${image.tag}: ${formatSize(image.sizeBytes)}, built=${image.built}, ${image.seconds} s`);
  assert.equal(image.tag, entry.runtime.image);
  assert.ok(image.sizeBytes < maxImageBytes, `${image.tag} is ${formatSize(image.sizeBytes)}, over 150 MiB`);

  // Asked again, both come from the tag cache at once.
  const cached = await ensureCatalogImages(new Catalog([entry]), { docker, onProgress });
  t.diagnostic(`cached: ${cached.map((r) => `${r.tag} ${r.seconds} s`).join(', ')}`);
  assert.deepEqual(
    cached.map((r) => [r.tag, r.built]),
    [
      [base.tag, false],
      [image.tag, false],
    ],
  );
  assert.ok(cached.every((r) => r.seconds < 5));

  const name = uniqueId('sf-images-test');
  const adminPassword = randomBytes(18).toString('base64url');
  const port = await freePort();
  await docker.createVolume({ Name: name, Labels: { 'sf.test': 'images' } });
  let container: Dockerode.Container | undefined;
  t.after(async () => {
    await container?.remove({ force: true, v: true }).catch(() => {});
    await docker
      .getVolume(name)
      .remove()
      .catch(() => {});
  });
  container = await createServiceContainer(
    docker,
    entry,
    { adminPassword },
    {
      name,
      Labels: { 'sf.test': 'images' },
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
      },
    },
  );
  await container.start();
  const readyMs = await awaitReady(container, entry);
  t.diagnostic(`first start (initdb + roles) ready in ${readyMs} ms`);

  const admin = entry.runtime.adminUser;
  assert.equal(await psqlOk(port, admin, adminPassword, ['SELECT current_user, current_database()']), 'postgres|sf');
  // A relocation's final copy carries the WAL segment in use whole: the image keeps it small.
  assert.equal(await psqlOk(port, admin, adminPassword, ['SHOW wal_segment_size']), '1MB');
  const wrong = await psql(port, admin, `${adminPassword}x`, ['SELECT 1']);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /password authentication failed for user "postgres"/);
  // The layout bindings rely on: the app role owns nothing yet and cannot log in; the
  // database and its public schema stay with postgres; only sf_app may connect to sf, and
  // nobody but postgres to the other databases.
  assert.equal(
    await psqlOk(port, admin, adminPassword, [
      "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sf_app'",
      "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'sf'",
      "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'",
      "SELECT string_agg(datname || ':' || has_database_privilege('sf_app', datname, 'CONNECT'), ',' ORDER BY datname) FROM pg_database",
      "SELECT has_database_privilege('sf_app', 'sf', 'CREATE'), has_schema_privilege('sf_app', 'public', 'CREATE')",
    ]),
    'f\npostgres\npg_database_owner\npostgres:false,sf:true,template0:false,template1:false\nf|t',
  );

  const key = () => ({
    username: `sf_bind_${randomBytes(6).toString('hex')}`,
    password: randomBytes(18).toString('base64url'),
    database: entry.binding.database ?? 'sf',
  });
  const [one, two] = [key(), key()];
  await psqlOk(port, admin, adminPassword, fillBinding(entry.binding.create, one));
  await psqlOk(port, one.username, one.password, [
    'CREATE TABLE public.notes (id integer PRIMARY KEY, body text NOT NULL)',
    "INSERT INTO public.notes VALUES (1, 'kept after unbind')",
  ]);
  assert.equal(
    await psqlOk(port, one.username, one.password, ['SELECT session_user, current_user', 'SELECT body FROM notes']),
    `${one.username}|sf_app\nkept after unbind`,
  );
  // A second key shares the table the first one made.
  await psqlOk(port, admin, adminPassword, fillBinding(entry.binding.create, two));
  await psqlOk(port, two.username, two.password, ["INSERT INTO notes VALUES (2, 'by the second key')"]);

  const unbind = [...(entry.binding.disable ?? []), ...entry.binding.drop];
  await psqlOk(port, admin, adminPassword, fillBinding(unbind, one));
  assert.equal(
    await psqlOk(port, admin, adminPassword, [
      "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'notes'",
      'SELECT body FROM public.notes WHERE id = 1',
    ]),
    'sf_app\nkept after unbind',
  );
  assert.equal(await psqlOk(port, two.username, two.password, ['SELECT count(*) FROM notes']), '2');
  const unbound = await psql(port, one.username, one.password, ['SELECT 1']);
  assert.notEqual(unbound.code, 0, 'the unbound user can no longer log in');
  assert.match(unbound.stderr, /no pg_hba\.conf entry|password authentication failed/);

  // SIGINT (the image's stop signal) is a fast shutdown: exit code 0, and the next start
  // reuses the cluster on the volume instead of creating one.
  await container.stop({ t: 30 });
  assert.equal((await container.inspect()).State.ExitCode, 0);
  await container.start();
  await awaitReady(container, entry);
  assert.equal(
    await psqlOk(port, admin, adminPassword, ['SELECT body FROM public.notes WHERE id = 1']),
    'kept after unbind',
  );
  const logs = (await container.logs({ stdout: true, stderr: true })).toString();
  assert.equal(logs.match(/creating the cluster/g)?.length, 1, 'initdb ran once');
});

test('postgres image: refuses to create a cluster without an admin password', { timeout: 20 * 60_000 }, async (t) => {
  const catalog = await Catalog.load();
  const entry = catalog.byServiceName('postgres');
  assert.ok(entry);
  await ensureServiceImage(entry, { docker, onProgress: () => {} });
  const cases = [
    { env: [], said: /POSTGRES_PASSWORD is empty: refusing to create a cluster without an admin password/ },
    // A file named but never put in (an agent that failed half way) is an error, not "no password".
    {
      env: [`${entry.runtime.adminPasswordFileEnv}=${secretPaths(entry).admin}`],
      said: /POSTGRES_PASSWORD_FILE names '\/run\/sf-secrets\/admin-password', which is not a readable file/,
    },
  ];
  for (const { env, said } of cases) {
    const container = await docker.createContainer({
      name: uniqueId('sf-images-test-nopw'),
      Image: entry.runtime.image,
      Env: [...Object.entries(entry.runtime.env).map(([key, value]) => `${key}=${value}`), ...env],
      Labels: { 'sf.test': 'images' },
    });
    t.after(() => container.remove({ force: true, v: true }).catch(() => {}));
    await container.start();
    const result = (await container.wait()) as { StatusCode: number };
    assert.equal(result.StatusCode, 1);
    const logs = (await container.logs({ stdout: true, stderr: true })).toString();
    assert.match(logs, said);
  }
});
