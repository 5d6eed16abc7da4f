import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { pidsLimit } from '@service-foundry/agent';
import { Catalog, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import { ensureServiceImage } from '../src/index.js';
import { execIn } from './postgres-nodes.js';
import { createServiceContainer, secretPaths, testPlan } from './service-containers.js';

/**
 * A Postgres container made the way the agent makes it (passwords as files, the plan's
 * memory, connection and process limits): no password anywhere Docker or the container's
 * processes show, the plan's max_connections in force, and a flood of connections that
 * never authenticate (each one a forked backend) survived instead of OOM-killing it.
 */

function adminPsql(port: number, password: string, sql: string): Promise<string> {
  const args = ['-X', '-A', '-t', '-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'sf', '-c', sql];
  const env = { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' };
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/psql', args, { env, timeout: 20_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(stderr.trim() || error.message)) : resolve(stdout.trim()),
    );
  });
}

test('postgres image: passwords only in files, the plan connection limits, a connection flood survived', {
  timeout: 10 * 60_000,
}, async (t) => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry?.replication);
  await ensureServiceImage(entry, { docker, onProgress: () => {} });
  const plan = entry.plans[testPlan];
  assert.ok(plan);
  const secrets = {
    adminPassword: randomBytes(18).toString('base64url'),
    replicationPassword: randomBytes(18).toString('base64url'),
  };
  const port = await freePort();
  const name = uniqueId('sf-images-limits');
  const container = await createServiceContainer(
    docker,
    entry,
    secrets,
    {
      name,
      Labels: { 'sf.test': 'images' },
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        // An anonymous volume, removed with the container.
        Mounts: [{ Type: 'volume', Source: '', Target: entry.runtime.volumePath }],
        Memory: plan.resources.memoryMb * 1024 * 1024,
        PidsLimit: pidsLimit(plan.connections),
      },
    },
    { [entry.replication.env.replicationUser]: 'sf_replicator', [entry.replication.env.role]: 'primary' },
  );
  const flood: Socket[] = [];
  t.after(async () => {
    for (const socket of flood) socket.destroy();
    await container.remove({ force: true, v: true }).catch(() => {});
  });
  await container.start();
  await waitFor(async () => (await execIn(docker, container, entry.runtime.readiness.exec)).code === 0, {
    description: 'postgres ready',
    timeoutMs: entry.runtime.readiness.timeoutSeconds * 1000,
    intervalMs: 200,
  });
  assert.equal(await adminPsql(port, secrets.adminPassword, 'SELECT 1'), '1', 'the admin password from its file');

  // Nowhere Docker shows a container, nor in any process's environment or command line.
  const info = await container.inspect();
  const shown = JSON.stringify([info.Config, info.Args, info.Path, info.HostConfig]);
  const processes = await execIn(docker, container, [
    'sh',
    '-c',
    'for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; echo; done 2>/dev/null',
  ]);
  assert.ok(processes.stdout.includes('postgres'), 'the processes were read');
  for (const password of Object.values(secrets)) {
    assert.ok(!shown.includes(password), 'docker inspect shows no password');
    assert.ok(!processes.stdout.includes(password), 'no process environment or command line holds a password');
  }
  assert.ok(info.Config.Env.includes(`${entry.runtime.adminPasswordFileEnv}=${secretPaths(entry).admin}`));
  // The files: the service's user only, read-only.
  const listing = await execIn(docker, container, ['ls', '-ln', entry.runtime.secretFiles.dir]);
  const files = listing.stdout
    .split('\n')
    .filter((line) => line.startsWith('-'))
    .map((line) => line.split(/\s+/));
  // The passwords (and the ones a rotation replaces: none, so empty), and the node's
  // certificate, its key and the CA (as the agent gives them).
  assert.deepEqual(
    files.map((fields) => fields.at(-1)),
    [
      'admin-password',
      'admin-password.previous',
      'replication-password',
      'replication-password.previous',
      'tls-ca',
      'tls-cert',
      'tls-key',
    ],
  );
  for (const fields of files) assert.equal(fields.slice(0, 4).join(' '), '-r-------- 1 999 999', fields.at(-1));

  const settings = await adminPsql(
    port,
    secrets.adminPassword,
    "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('max_connections', 'superuser_reserved_connections', 'authentication_timeout')",
  );
  assert.equal(
    settings,
    `authentication_timeout=10 max_connections=${plan.connections.service} superuser_reserved_connections=3`,
  );

  // 2000 connections that never send a startup packet: Postgres forks a backend for each
  // before it counts them against max_connections. The process limit makes further forks
  // fail ("could not fork new process for connection"), which the postmaster survives.
  const limit = pidsLimit(plan.connections);
  for (let i = 0; i < 2000; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    flood.push(socket);
  }
  const peak = await waitFor(
    async () => {
      const stats = (await container.stats({ stream: false })) as {
        pids_stats?: { current?: number };
        memory_stats?: { usage?: number };
      };
      const pids = stats.pids_stats?.current ?? 0;
      return pids >= limit - 4 ? { pids, memoryMb: Math.round((stats.memory_stats?.usage ?? 0) / 2 ** 20) } : false;
    },
    { description: `the flood to reach ${limit} processes`, timeoutMs: 60_000, intervalMs: 200 },
  );
  t.diagnostic(`flood: ${peak.pids} processes, ${peak.memoryMb} MiB of ${plan.resources.memoryMb} MiB`);
  assert.ok(peak.memoryMb < plan.resources.memoryMb / 2, `memory stays bounded (${peak.memoryMb} MiB)`);
  const during = await container.inspect();
  assert.equal(during.State.Running, true, 'still running during the flood');
  assert.equal(during.State.OOMKilled, false);

  for (const socket of flood) socket.destroy();
  await waitFor(async () => (await adminPsql(port, secrets.adminPassword, 'SELECT 1').catch(() => '')) === '1', {
    description: 'admin login after the flood',
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  const after = await container.inspect();
  assert.equal(after.State.OOMKilled, false);
  assert.equal(after.State.Restarting || !after.State.Running, false, 'the same server, never restarted');
  const logs = (await container.logs({ stdout: true, stderr: true })).toString();
  assert.match(logs, /could not fork new process for connection/);
});
