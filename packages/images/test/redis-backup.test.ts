import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import type Dockerode from 'dockerode';
import { createClient } from 'redis';
import { ensureServiceImage } from '../src/index.js';
import {
  backupPath,
  execWith,
  Made,
  mountpoint,
  prepareCommand,
  restoreIntoNewVolume,
  runPrepare,
  treeOf,
} from './backup-volumes.js';
import { createServiceContainer, redisCliTls, testPki } from './service-containers.js';

/**
 * The Redis backup recipe (`sf-redis backup-prepare {{path}}`) driven as the agent drives
 * it: prepare in the running container while a client keeps writing, copy the prepared
 * folder into the root of a new volume, start a new container on it. What a user relies
 * on: the restore starts as a primary with every write acknowledged before the backup
 * began, its binding users, and no half-applied script.
 */

const labels = { 'sf.test': 'images' };

interface Auth {
  user: string;
  password: string;
}

interface RedisNode {
  name: string;
  container: Dockerode.Container;
  port: number;
}

interface Instance {
  entry: CatalogEntry;
  prefix: string;
  admin: Auth;
  replicationPassword: string;
  made: Made;
}

/** The host's redis-cli; its output, error replies included, whatever its exit code. */
async function redisCli(port: number, auth: Auth, ...command: string[]): Promise<string> {
  // The containers serve TLS only, as the agent runs them (the test CA checks the server).
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '--no-auth-warning',
    ...(await redisCliTls()),
    '--user',
    auth.user,
    '--pass',
    auth.password,
  ];
  return new Promise((resolve) => {
    execFile('redis-cli', [...args, ...command], { timeout: 15_000 }, (_error, stdout, stderr) =>
      resolve(`${stdout}${stderr}`.trim()),
    );
  });
}

async function newInstance(made: Made): Promise<Instance> {
  const entry = (await Catalog.load()).byServiceName('redis');
  assert.ok(entry?.backup, 'services-catalog/redis has a backup recipe');
  await ensureServiceImage(entry, { docker, onProgress: () => {} });
  const prefix = uniqueId('sf-redisbackup-test');
  const network = await docker.createNetwork({ Name: prefix, Labels: labels });
  made.track('network', network.id);
  const admin = { user: entry.runtime.adminUser, password: randomBytes(18).toString('base64url') };
  return { entry, prefix, admin, replicationPassword: randomBytes(18).toString('base64url'), made };
}

/** A container with the recipe's env on `volume` (made unless it exists: a restored copy). */
async function startNode(
  instance: Instance,
  suffix: string,
  options: { role: 'primary' | 'replica'; upstream?: string; volume?: string; cmd?: string[] },
): Promise<RedisNode> {
  const { entry, prefix } = instance;
  const recipe = entry.replication;
  assert.ok(recipe);
  const name = `${prefix}-${suffix}`;
  const volume = options.volume ?? name;
  if (!options.volume) {
    await docker.createVolume({ Name: volume, Labels: labels });
    instance.made.track('volume', volume);
  }
  const env: Record<string, string> = {
    [recipe.env.role]: options.role,
    [recipe.env.replicaName]: suffix,
    [recipe.env.replicationUser]: 'sf_replicator',
  };
  if (options.upstream) {
    env[recipe.env.upstreamHost] = options.upstream;
    env[recipe.env.upstreamPort] = String(entry.runtime.port);
  }
  const port = await freePort();
  const secrets = { adminPassword: instance.admin.password, replicationPassword: instance.replicationPassword };
  const container = await createServiceContainer(
    docker,
    entry,
    secrets,
    {
      name,
      Labels: labels,
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        NetworkMode: prefix,
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        Mounts: [{ Type: 'volume', Source: volume, Target: entry.runtime.volumePath }],
      },
      ...(options.cmd ? { Cmd: options.cmd } : {}),
    },
    env,
  );
  instance.made.track('container', container.id);
  await container.start();
  return { name, container, port };
}

async function awaitReady(instance: Instance, node: RedisNode): Promise<number> {
  const started = Date.now();
  await waitFor(
    async () => (await execWith(docker, node.container, instance.entry.runtime.readiness.exec)).code === 0,
    {
      description: `${node.name} ready`,
      timeoutMs: instance.entry.runtime.readiness.timeoutSeconds * 1000,
      intervalMs: 100,
    },
  );
  return Date.now() - started;
}

async function sfRedisOk(node: RedisNode, ...args: string[]): Promise<string> {
  const result = await execWith(docker, node.container, ['sf-redis', ...args]);
  assert.equal(result.code, 0, `sf-redis ${args.join(' ')} on ${node.name}: ${result.stderr}`);
  return result.stdout;
}

const keys = 20_000;
const populate = `for i = 1, ${keys} do redis.call('SET', 'k:' .. i, i) end return ${keys}`;
const keySum = `local s = 0 for i = 1, ${keys} do s = s + tonumber(redis.call('GET', 'k:' .. i)) end return s`;
// One script per write: scripts are atomic, so the counter, log and sum move together.
const writeOne =
  "local n = redis.call('INCR', 'w:n') redis.call('RPUSH', 'w:log', n) redis.call('INCRBY', 'w:sum', n) return n";

/**
 * Writes one script at a time until stopped, on one TLS connection as an app would hold
 * it (a redis-cli per write would spend its time in process starts and handshakes);
 * `acked` is the last write the server acknowledged.
 */
function startWriter(node: RedisNode, auth: Auth) {
  const state = { acked: 0, stopped: false, error: '' };
  const done = (async () => {
    const client = createClient({
      socket: { host: '127.0.0.1', port: node.port, tls: true, ca: await readFile((await testPki()).caFile, 'utf8') },
      username: auth.user,
      password: auth.password,
      RESP: 2,
      disableClientInfo: true,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      while (!state.stopped) {
        const reply = String(await client.sendCommand(['EVAL', writeOne, '0']));
        if (!/^\d+$/.test(reply)) {
          state.error = reply;
          return;
        }
        state.acked = Number(reply);
      }
    } catch (error) {
      state.error = (error as Error).message;
    } finally {
      if (client.isOpen) client.destroy();
    }
  })();
  return {
    state,
    async stop(): Promise<void> {
      state.stopped = true;
      await done;
      assert.equal(state.error, '', `the writer failed: ${state.error}`);
    },
  };
}

test('redis backup: prepare under concurrent writes, restored volume starts as a primary with them', {
  timeout: 5 * 60_000,
}, async (t) => {
  const made = new Made(docker);
  t.after(() => made.removeAll());
  const instance = await newInstance(made);
  const { entry, admin } = instance;
  const testStarted = Date.now();
  const source = await startNode(instance, 'src', { role: 'primary' });
  await awaitReady(instance, source);
  assert.equal(await redisCli(source.port, admin, 'EVAL', populate, '0'), String(keys));
  const expectedSum = String((keys * (keys + 1)) / 2);
  assert.equal(await redisCli(source.port, admin, 'EVAL', keySum, '0'), expectedSum);
  // A binding user, made with the recipe: it must survive the restore (redis.conf is copied).
  const bound = { user: `u_${randomBytes(6).toString('hex')}`, password: randomBytes(16).toString('hex') };
  for (const statement of entry.binding.create) {
    const argv = statement
      .split(/\s+/)
      .map((w) => w.replace('{{username}}', bound.user).replace('{{password}}', bound.password));
    assert.equal(await redisCli(source.port, admin, ...argv), 'OK');
  }
  assert.equal(await redisCli(source.port, bound, 'SET', 'bound:key', 'kept'), 'OK');
  // A copy left over from an interrupted backup is replaced, not merged into.
  const leftover = await execWith(docker, source.container, ['mkdir', '-p', `${backupPath(entry)}/stale`]);
  assert.equal(leftover.code, 0, leftover.stderr);

  const writer = startWriter(source, admin);
  t.after(() => writer.stop().catch(() => {}));
  await waitFor(() => writer.state.acked >= 50 || Boolean(writer.state.error), {
    description: 'the writer has 50 acknowledged writes',
    timeoutMs: 20_000,
  });
  const before = writer.state.acked;
  const prepared = await runPrepare(docker, entry, source.container);
  const after = writer.state.acked;
  await writer.stop();
  t.diagnostic(`prepare took ${prepared.ms} ms while ${after - before} writes were acknowledged: ${prepared.stdout}`);
  assert.equal(prepared.code, 0, `${prepareCommand(entry).join(' ')} exited ${prepared.code}: ${prepared.stderr}`);
  assert.match(prepared.stdout, /^snapshot of \/data in \/data\/sf-backup \(\d+ bytes of RDB, appendonly yes\)$/);

  // Laid out like /data: the config and an AOF directory whose base is the snapshot.
  const copy = join(await mountpoint(docker, `${instance.prefix}-src`), entry.backup?.dir ?? '');
  assert.deepEqual(await treeOf(copy, 2), [
    '. 0700 999',
    'appendonlydir 0700 999',
    'appendonlydir/appendonly.aof.1.base.rdb 0600 999',
    'appendonlydir/appendonly.aof.1.incr.aof 0600 999',
    'appendonlydir/appendonly.aof.manifest 0600 999',
    'redis.conf 0600 999',
  ]);
  assert.equal(
    await readFile(join(copy, 'appendonlydir', 'appendonly.aof.manifest'), 'utf8'),
    'file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n',
  );

  const restoreMs = await restoreIntoNewVolume(docker, entry, `${instance.prefix}-src`, `${instance.prefix}-dst`, made);
  const restored = await startNode(instance, 'dst', { role: 'primary', volume: `${instance.prefix}-dst` });
  const readyMs = await awaitReady(instance, restored);
  t.diagnostic(`copied into a new volume in ${restoreMs} ms; the restored server was ready in ${readyMs} ms`);
  const logs = (await restored.container.logs({ stdout: true, stderr: true })).toString();
  assert.match(logs, /starting with the existing \/data\/redis\.conf as a primary/);
  assert.match(logs, /DB loaded from append only file/);
  assert.equal(await sfRedisOk(restored, 'role'), 'primary');

  assert.equal(await redisCli(restored.port, admin, 'EVAL', keySum, '0'), expectedSum);
  const n = Number(await redisCli(restored.port, admin, 'GET', 'w:n'));
  assert.ok(n >= before, `all ${before} writes acknowledged before prepare are there (${n})`);
  assert.equal(await redisCli(restored.port, admin, 'LLEN', 'w:log'), String(n), 'the log matches the counter');
  assert.equal(await redisCli(restored.port, admin, 'LINDEX', 'w:log', '-1'), String(n));
  assert.equal(await redisCli(restored.port, admin, 'GET', 'w:sum'), String((n * (n + 1)) / 2), 'the sum matches');
  t.diagnostic(`restored ${n} writes: ${before} acknowledged before prepare, ${after} when it returned`);
  assert.equal(await redisCli(restored.port, bound, 'GET', 'bound:key'), 'kept', 'the binding user logs in');
  assert.equal(await redisCli(restored.port, bound, 'SET', 'after:restore', '1'), 'OK');
  t.diagnostic(`whole test ${Date.now() - testStarted} ms`);
});

test('redis backup: a copy taken on a replica starts as a primary; refusals and failures', {
  timeout: 5 * 60_000,
}, async (t) => {
  const made = new Made(docker);
  t.after(() => made.removeAll());
  const instance = await newInstance(made);
  const { entry, admin } = instance;
  const testStarted = Date.now();
  const primary = await startNode(instance, 'p', { role: 'primary' });
  await awaitReady(instance, primary);
  assert.equal(await redisCli(primary.port, admin, 'EVAL', populate, '0'), String(keys));
  const replica = await startNode(instance, 'r', { role: 'replica', upstream: primary.name });
  await awaitReady(instance, replica);
  await waitFor(async () => (await redisCli(replica.port, admin, 'DBSIZE')) === String(keys), {
    description: 'the replica has every key',
    timeoutMs: 15_000,
  });

  const prepared = await runPrepare(docker, entry, replica.container);
  assert.equal(prepared.code, 0, prepared.stderr);
  t.diagnostic(`prepare on the replica took ${prepared.ms} ms`);
  const conf = await readFile(
    join(await mountpoint(docker, replica.name), entry.backup?.dir ?? '', 'redis.conf'),
    'utf8',
  );
  assert.doesNotMatch(conf, /^replicaof /m, 'the copy follows no one');
  await restoreIntoNewVolume(docker, entry, replica.name, `${instance.prefix}-c`, made);
  const restored = await startNode(instance, 'c', { role: 'primary', volume: `${instance.prefix}-c` });
  await awaitReady(instance, restored);
  assert.equal(await sfRedisOk(restored, 'role'), 'primary');
  assert.equal(await redisCli(restored.port, admin, 'DBSIZE'), String(keys));
  assert.equal(await redisCli(restored.port, admin, 'SET', 'after:restore', '1'), 'OK');

  // Paths outside the volume or over the live files: usage error (2), nothing removed.
  for (const bad of [
    'sf-backup',
    '/data',
    '/data/',
    '/data/appendonlydir',
    '/data/redis.conf',
    '/data/../x',
    '/tmp/x',
  ]) {
    const refused = await execWith(docker, primary.container, ['sf-redis', 'backup-prepare', bad]);
    assert.equal(refused.code, 2, `backup-prepare ${bad} is refused: ${refused.stderr}`);
  }
  assert.equal(await redisCli(primary.port, admin, 'DBSIZE'), String(keys));
  const live = await execWith(docker, primary.container, ['ls', '/data']);
  assert.deepEqual(live.stdout.split('\n'), ['appendonlydir', 'redis.conf']);

  // A wrong admin password (a file of another content): exit 1 with the server's refusal,
  // never the password, no copy left.
  const wrong = `wrong-${randomBytes(8).toString('hex')}`;
  const wrongFile = '/tmp/wrong-admin-password';
  assert.equal((await execWith(docker, primary.container, ['sh', '-c', `printf %s ${wrong} > ${wrongFile}`])).code, 0);
  const refused = await runPrepare(docker, entry, primary.container, [
    `${entry.runtime.adminPasswordFileEnv}=${wrongFile}`,
  ]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^sf-redis backup-prepare: .*WRONGPASS/);
  assert.ok(!refused.stderr.includes(wrong) && !refused.stderr.includes(admin.password));

  // No server running (the container runs `sleep`): exit 1 with the reason, no copy left.
  const idle = await startNode(instance, 'idle', { role: 'primary', cmd: ['sleep', '300'] });
  const failed = await runPrepare(docker, entry, idle.container);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /^sf-redis backup-prepare: .*Could not connect to Redis/);
  for (const node of [primary, idle]) {
    const gone = await execWith(docker, node.container, ['ls', backupPath(entry)]);
    assert.notEqual(gone.code, 0, `no ${backupPath(entry)} left on ${node.name}`);
  }
  t.diagnostic(`whole test ${Date.now() - testStarted} ms`);
});
