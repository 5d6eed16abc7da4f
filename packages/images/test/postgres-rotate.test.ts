import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { replicaSecrets, secretFilesArchive } from '@service-foundry/agent';
import { Catalog, waitFor } from '@service-foundry/core';
import { docker } from '@service-foundry/test-support/docker';
import { ensureServiceImage } from '../src/index.js';
import {
  awaitReady,
  type Cluster,
  type ExecResult,
  execIn,
  fillCommand,
  logsOf,
  nodeIp,
  type PgNode,
  sfPg,
  startNode,
  testNetwork,
} from './postgres-nodes.js';
import { testPki } from './service-containers.js';

/**
 * `sf-pg rotate-passwords` as the agent drives `sf rotate-credentials`: new password files
 * (the replaced ones as `*.previous`) put into a running primary and standby, then the
 * catalog's `rotatePasswords` with `accept-previous` on each, then `new-only` on each. The
 * clear passwords must never show in a process of the container nor in the server's log.
 */

/** The host's psql over TCP with TLS checked against the test CA, as a client would log in. */
async function login(node: PgNode, user: string, password: string, sql: string): Promise<ExecResult> {
  // The replication user opens no database: a physical replication session instead.
  const target = user === 'postgres' ? 'dbname=sf' : 'dbname=replication replication=true';
  const tls = `sslmode=verify-full sslrootcert=${(await testPki()).caFile}`;
  const conninfo = `host=127.0.0.1 port=${node.port} user=${user} ${target} ${tls}`;
  const env = { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' };
  return new Promise((resolve) => {
    execFile(
      'psql',
      [conninfo, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { env, timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
          stdout: stdout.trim(),
          stderr: stderr.trim(),
        }),
    );
  });
}

async function loginOk(node: PgNode, user: string, password: string, sql: string): Promise<string> {
  const result = await login(node, user, password, sql);
  assert.equal(result.code, 0, `${user} on ${node.name}: ${result.stderr}`);
  return result.stdout;
}

/**
 * Runs CMD in the container while a second exec reads every process's command line and
 * environment in a tight loop (one `cat` per round, so short-lived psql processes are
 * caught too); returns the command's result and everything the sampler read.
 */
async function runSampled(node: PgNode, cmd: string[]): Promise<{ result: ExecResult; seen: string }> {
  const exec = await node.container.exec({
    Cmd: ['sh', '-c', 'echo $$; while :; do cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null; echo; done'],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  docker.modem.demuxStream(stream, out, out);
  const ended = once(stream, 'end');
  const pid = await waitFor(() => /^(\d+)\n/.exec(Buffer.concat(chunks).toString())?.[1], {
    description: 'the sampler started',
    timeoutMs: 10_000,
    intervalMs: 10,
  });
  const result = await execIn(docker, node.container, cmd);
  await execIn(docker, node.container, ['kill', pid]);
  await ended;
  return { result, seen: Buffer.concat(chunks).toString() };
}

test('postgres image: sf-pg rotate-passwords takes on new admin and replication passwords without downtime', {
  timeout: 5 * 60_000,
}, async (t) => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry?.replication && entry.rotatePasswords, 'the postgres entry has replication and rotatePasswords');
  const { replication: recipe, rotatePasswords } = entry;
  await ensureServiceImage(entry, { docker, onProgress: () => {} });

  const id = randomBytes(4).toString('hex');
  const { network, track } = await testNetwork(docker, t, `sf-pgrot-${id}`, id);
  // Characters a libpq password file must escape (: and \), a quote and a space: each
  // reaches psql's prompt and the password file intact.
  const old = {
    admin: randomBytes(18).toString('base64url'),
    replication: `${randomBytes(12).toString('base64url')}:\\o`,
  };
  const fresh = {
    admin: `${randomBytes(12).toString('base64url')} it's`,
    replication: `${randomBytes(12).toString('base64url')}:\\n`,
  };
  const cluster: Cluster = {
    docker,
    entry,
    network,
    adminPassword: old.admin,
    replicationUser: 'sf_replicator',
    replicationPassword: old.replication,
    labels: { 'sf.test': 'postgres-rotate', 'sf.test.run': id },
    track,
  };
  const primary = await startNode(cluster, { name: `sf-pgrot-${id}-p`, role: 'primary' });
  await awaitReady(cluster, primary);
  const upstream = { host: await nodeIp(cluster, primary), port: recipe.port };
  const standby = await startNode(cluster, { name: `sf-pgrot-${id}-s`, role: 'replica', upstream });
  await awaitReady(cluster, standby);
  const streaming = (password: string) =>
    loginOk(primary, 'postgres', password, "SELECT pid FROM pg_stat_replication WHERE state = 'streaming'");
  const firstSender = await waitFor(async () => (await streaming(old.admin)) || undefined, {
    description: 'the standby streams',
  });
  assert.equal(await loginOk(primary, 'postgres', old.admin, 'SELECT 1'), '1', 'the old admin password works before');

  // What the agent puts into each running container: new files, the replaced passwords
  // beside them. (The TLS files stay from creation: the agent's archive holds them too.)
  const secret = {
    adminUser: 'postgres',
    adminPassword: fresh.admin,
    replicationUser: cluster.replicationUser,
    replicationPassword: fresh.replication,
    previous: { adminPassword: old.admin, replicationPassword: old.replication },
  };
  const made = replicaSecrets(entry.runtime, secret, {
    replicationPasswordFileEnv: recipe.env.replicationPasswordFile,
  });
  const archive = await secretFilesArchive(made.secretFiles);
  for (const node of [primary, standby]) await node.container.putArchive(archive, { path: '/' });

  // Each phase on the standby then the primary, each run twice: the second run must
  // print the same and exit 0. Every run is sampled for the passwords.
  const passwords = [...Object.values(old), ...Object.values(fresh)];
  const printed: string[] = [];
  // How many runs the sampler caught sf-pg, and psql's \password, in the act.
  const caught = { sfPg: 0, psql: 0 };
  for (const phase of ['accept-previous', 'new-only']) {
    for (const node of [standby, primary]) {
      const runs = [];
      for (let run = 0; run < 2; run++) {
        const { result, seen } = await runSampled(node, fillCommand(rotatePasswords, { phase }));
        assert.equal(result.code, 0, `${phase} on ${node.name}: ${result.stderr}`);
        assert.ok(seen.includes('postgres'), 'the sampler read the processes');
        if (seen.includes('rotate-passwords')) caught.sfPg++;
        if (seen.includes('\\password ')) caught.psql++;
        for (const password of passwords) {
          assert.ok(!seen.includes(password), `no command line or environment holds a password (${phase})`);
        }
        runs.push(result.stdout);
      }
      assert.equal(runs[1], runs[0], `${phase} twice on ${node.name} says the same`);
      printed.push(`${phase} ${node === primary ? 'primary' : 'standby'}: ${runs[0]}`);
    }
  }
  for (const line of printed) t.diagnostic(line);
  t.diagnostic(`sampled in the act: sf-pg in ${caught.sfPg} of 8 runs, psql \\password in ${caught.psql} of 4`);
  assert.ok(caught.sfPg > 0 && caught.psql > 0, 'the sampler ran while the passwords were being set');
  assert.match(printed[1] ?? '', /^accept-previous primary: primary: passwords of postgres and sf_replicator set/);
  assert.match(printed[0] ?? '', /^accept-previous standby: replica: replication password file rewritten/);

  // The logins a user relies on: new accepted, old refused, for both users; on the
  // standby once the new verifiers are replayed.
  for (const node of [primary, standby]) {
    await waitFor(async () => (await login(node, 'postgres', fresh.admin, 'SELECT 1')).code === 0, {
      description: `the new admin password works on ${node.name}`,
    });
    const refused = await login(node, 'postgres', old.admin, 'SELECT 1');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /password authentication failed for user "postgres"/);
  }
  assert.match(await loginOk(primary, 'sf_replicator', fresh.replication, 'IDENTIFY_SYSTEM'), /\|/);
  const refused = await login(primary, 'sf_replicator', old.replication, 'IDENTIFY_SYSTEM');
  assert.match(refused.stderr, /password authentication failed for user "sf_replicator"/);
  assert.equal(
    await loginOk(
      primary,
      'postgres',
      fresh.admin,
      "SELECT string_agg(left(rolpassword, 14), ',') FROM pg_authid WHERE rolname IN ('postgres', 'sf_replicator')",
    ),
    'SCRAM-SHA-256$,SCRAM-SHA-256$',
  );

  // The running WAL receiver kept its connection; cut it, and it must log in again with
  // the new password from the rewritten file and carry on streaming.
  assert.equal(await streaming(fresh.admin), firstSender, 'the stream survived the rotation');
  await loginOk(primary, 'postgres', fresh.admin, 'SELECT pg_terminate_backend(pid) FROM pg_stat_replication');
  await waitFor(
    async () => {
      const sender = await streaming(fresh.admin);
      return sender !== '' && sender !== firstSender;
    },
    { description: 'the standby streams again on a new connection', timeoutMs: 30_000 },
  );
  await loginOk(primary, 'postgres', fresh.admin, "CREATE TABLE rotated AS SELECT 'after the rotation'::text AS note");
  await waitFor(
    async () =>
      (await login(standby, 'postgres', fresh.admin, 'SELECT note FROM rotated')).stdout === 'after the rotation',
    { description: 'a row written after the reconnection reaches the standby' },
  );

  // A primary whose synchronous standby is gone (as a restored primary before its replicas
  // have cloned, with the new replication password) still takes the step at once: the
  // change must not wait for a standby that waits for it.
  await sfPg(cluster, primary, 'configure', 'remote-fsync', 'fsync');
  await standby.container.stop({ t: 10 });
  const startedAt = Date.now();
  const alone = await execIn(docker, primary.container, ['sf-pg', 'rotate-passwords', 'new-only']);
  assert.equal(alone.code, 0, alone.stderr);
  assert.ok(Date.now() - startedAt < 10_000, `took ${Date.now() - startedAt} ms without a standby`);

  // Bad usage: exit 2, as every sf-pg command.
  const sideways = await execIn(docker, primary.container, ['sf-pg', 'rotate-passwords', 'sideways']);
  assert.equal(sideways.code, 2);
  assert.match(sideways.stderr, /PHASE 'sideways' is not one of accept-previous, new-only/);
  assert.equal((await execIn(docker, primary.container, ['sf-pg', 'rotate-passwords'])).code, 2);
  // The server only ever saw verifiers: no password in either container's log.
  for (const node of [primary, standby]) {
    const logs = await logsOf(node);
    for (const password of passwords) assert.ok(!logs.includes(password), `no password in ${node.name}'s log`);
  }
});
