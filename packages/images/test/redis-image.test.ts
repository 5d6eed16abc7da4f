import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import Dockerode from 'dockerode';
import { ensureBaseImage, ensureServiceImage, formatSize } from '../src/index.js';
import { openSession } from './command-session.js';
import { execIn } from './postgres-nodes.js';
import { createServiceContainer, redisCliTls, testPlan } from './service-containers.js';

/**
 * Builds (first run, ~30 s) or reuses the Redis image, then runs a primary and a replica
 * on one Docker network the way the platform does (the recipe's env, passwords as files,
 * sf-redis through docker exec) and checks with the host's real redis-cli on the published
 * ports: ACLs, passwords in no environment, the plan's maxclients, the binding recipe,
 * replication of data and of binding users, restart, follow, promote.
 */

const docker = new Dockerode({ socketPath: '/var/run/docker.sock' });
const maxImageBytes = 40 * 1024 * 1024;

interface RedisNode {
  name: string;
  container: Dockerode.Container;
  port: number;
}

/** The host's redis-cli; its output, error replies included, whatever its exit code. */
async function redisCli(port: number, auth: { user: string; password: string } | undefined, ...command: string[]) {
  // The containers serve TLS only, as the agent runs them (the test CA checks the server).
  const args = ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', ...(await redisCliTls())];
  if (auth) args.push('--user', auth.user, '--pass', auth.password);
  return new Promise<string>((resolve) => {
    execFile('redis-cli', [...args, ...command], { timeout: 15_000 }, (_error, stdout, stderr) =>
      resolve(`${stdout}${stderr}`.trim()),
    );
  });
}

test('redis image: offline build, ACL users, replication and the sf-redis recipe', {
  timeout: 10 * 60_000,
}, async (t) => {
  const catalog = await Catalog.load();
  const entry = catalog.byServiceName('redis') as CatalogEntry;
  assert.ok(entry, 'services-catalog/redis is in the catalog');
  const replication = entry.replication;
  assert.ok(replication);
  const recipeEnv = replication.env;
  await ensureBaseImage({ docker });
  const image = await ensureServiceImage(entry, { docker });
  t.diagnostic(`image ${image.tag}: ${formatSize(image.sizeBytes)}, built=${image.built}, ${image.seconds} s`);
  assert.ok(image.sizeBytes < maxImageBytes, `${image.tag} is ${formatSize(image.sizeBytes)}, over 40 MiB`);

  const prefix = uniqueId('sf-redis-test');
  const adminPassword = randomBytes(18).toString('base64url');
  const replicationPassword = randomBytes(18).toString('base64url');
  const admin = { user: entry.runtime.adminUser, password: adminPassword };
  const made: Array<{ kind: 'container' | 'volume' | 'network'; id: string }> = [];
  t.after(async () => {
    for (const { kind, id } of made.reverse()) {
      if (kind === 'container')
        await docker
          .getContainer(id)
          .remove({ force: true, v: true })
          .catch(() => {});
      if (kind === 'volume')
        await docker
          .getVolume(id)
          .remove()
          .catch(() => {});
      if (kind === 'network')
        await docker
          .getNetwork(id)
          .remove()
          .catch(() => {});
    }
  });
  const network = await docker.createNetwork({ Name: prefix, Labels: { 'sf.test': 'images' } });
  made.push({ kind: 'network', id: network.id });

  async function startNode(suffix: string, role: 'primary' | 'replica', upstream?: string): Promise<RedisNode> {
    const name = `${prefix}-${suffix}`;
    const port = await freePort();
    await docker.createVolume({ Name: name, Labels: { 'sf.test': 'images' } });
    made.push({ kind: 'volume', id: name });
    const env: Record<string, string> = {
      [recipeEnv.role]: role,
      [recipeEnv.replicaName]: suffix,
      [recipeEnv.replicationUser]: 'sf_replicator',
    };
    if (upstream) {
      env[recipeEnv.upstreamHost] = upstream;
      env[recipeEnv.upstreamPort] = String(entry.runtime.port);
    }
    const container = await createServiceContainer(
      docker,
      entry,
      { adminPassword, replicationPassword },
      {
        name,
        Labels: { 'sf.test': 'images' },
        ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
        HostConfig: {
          NetworkMode: prefix,
          PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
          Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
        },
      },
      env,
    );
    made.push({ kind: 'container', id: container.id });
    await container.start();
    const node = { name, container, port };
    await awaitReady(node);
    return node;
  }

  async function awaitReady(node: RedisNode): Promise<void> {
    await waitFor(async () => (await execIn(docker, node.container, entry.runtime.readiness.exec)).code === 0, {
      description: `${node.name} ready`,
      timeoutMs: entry.runtime.readiness.timeoutSeconds * 1000,
      intervalMs: 100,
    });
  }

  async function sfRedis(node: RedisNode, ...args: string[]) {
    return execIn(docker, node.container, ['sf-redis', ...args]);
  }
  async function sfRedisOk(node: RedisNode, ...args: string[]): Promise<string> {
    const result = await sfRedis(node, ...args);
    assert.equal(result.code, 0, `sf-redis ${args.join(' ')} on ${node.name}: ${result.stderr}`);
    return result.stdout;
  }

  const started = Date.now();
  const primary = await startNode('r0', 'primary');
  const replica = await startNode('r1', 'replica', primary.name);
  t.diagnostic(`primary and replica ready in ${Date.now() - started} ms`);
  assert.equal(await sfRedisOk(primary, 'role'), 'primary');
  assert.equal(await sfRedisOk(replica, 'role'), 'replica');

  // No anonymous access, and the passwords stay off command lines and out of world-readable files.
  assert.match(await redisCli(primary.port, undefined, 'GET', 'x'), /NOAUTH/);
  const conf = await execIn(docker, primary.container, ['ls', '-ln', '/data/redis.conf']);
  assert.match(conf.stdout, /^-rw------- +\d+ +999 +999 /);
  // Nor in the environment: not in what Docker shows, nor in any process of the container
  // (the sync-users loop and the sf-redis commands read the files).
  const processes = await execIn(docker, primary.container, [
    'sh',
    '-c',
    'for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; echo; done 2>/dev/null',
  ]);
  assert.ok(processes.stdout.includes('redis-server'), 'the processes were read');
  for (const node of [primary, replica]) {
    const info = await node.container.inspect();
    const shown = JSON.stringify([info.Config, info.Args, info.Path, info.HostConfig]);
    for (const password of [adminPassword, replicationPassword]) {
      assert.ok(!shown.includes(password), `docker inspect ${node.name} shows no password`);
      assert.ok(!processes.stdout.includes(password), 'no process environment or command line holds a password');
    }
  }
  // The plan's connection limit, and idle clients closed after 10 minutes.
  const limit = entry.plans[testPlan]?.connections.service;
  assert.equal(await redisCli(primary.port, admin, 'CONFIG', 'GET', 'maxclients'), `maxclients\n${limit}`);
  assert.equal(await redisCli(primary.port, admin, 'CONFIG', 'GET', 'timeout'), 'timeout\n600');

  for (const node of [primary, replica]) {
    assert.equal(
      await sfRedisOk(node, 'configure', 'received', 'batched'),
      'appendfsync=everysec min-replicas-to-write=1 min-replicas-max-lag=10',
    );
  }
  assert.equal((await sfRedis(primary, 'configure', 'remote-fsync', 'fsync')).code, 2, 'no remote-fsync in Redis');

  // The binding recipe, as the broker's driver runs it: each statement split into argv.
  const bound = { user: `u_${randomBytes(6).toString('hex')}`, password: randomBytes(16).toString('hex') };
  const fill = (statement: string) =>
    statement
      .split(/\s+/)
      .map((word) => word.replace('{{username}}', bound.user).replace('{{password}}', bound.password));
  for (const statement of entry.binding.create) {
    assert.match(await redisCli(primary.port, admin, ...fill(statement)), /^OK$/);
  }
  assert.equal(await redisCli(primary.port, bound, 'SET', 'k', 'v'), 'OK');
  assert.equal(await redisCli(primary.port, bound, 'WAIT', '1', '5000'), '1');
  assert.match(await redisCli(primary.port, bound, 'CONFIG', 'SET', 'appendfsync', 'no'), /NOPERM/);
  // The replica has the data, and sync-users copies the binding user (Redis replicates no ACLs).
  await waitFor(async () => (await redisCli(replica.port, bound, 'GET', 'k')) === 'v', {
    description: 'the bound user reads k on the replica',
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  assert.match(await redisCli(replica.port, bound, 'SET', 'k', 'w'), /READONLY/);
  // A replica started after the bind is ready only once it holds the binding user too:
  // promoted the moment it is ready, it must let the bound clients in.
  const late = await startNode('r2', 'replica', primary.name);
  assert.equal(
    await redisCli(late.port, bound, 'GET', 'k'),
    'v',
    'the bound user logs in to a replica once it is ready',
  );
  await late.container.remove({ force: true, v: true });
  await waitFor(async () => (await sfRedisOk(primary, 'position')) === (await sfRedisOk(replica, 'position')), {
    description: 'the replica at the primary position',
    timeoutMs: 10_000,
  });
  assert.ok(Number(await sfRedisOk(primary, 'position')) > 0);

  // A restart keeps the data (AOF), the user (CONFIG REWRITE) and the settings.
  await primary.container.restart({ t: 10 });
  await awaitReady(primary);
  assert.equal(await redisCli(primary.port, bound, 'GET', 'k'), 'v');
  assert.equal(
    await redisCli(primary.port, admin, 'CONFIG', 'GET', 'min-replicas-to-write'),
    'min-replicas-to-write\n1',
  );

  // follow re-points a replica (here to the same primary); a primary refuses to follow.
  assert.equal(
    await sfRedisOk(replica, 'follow', primary.name, String(entry.runtime.port)),
    `following ${primary.name}:6379`,
  );
  assert.equal((await sfRedis(primary, 'follow', replica.name, '6379')).code, 1);

  // promote: idempotent; the promoted replica takes the bound user's writes.
  // The first through the agent's session (`sf-redis session`): one exec, a line per command.
  const session = await openSession(docker, replica.container, ['sf-redis', 'session']);
  assert.equal(await session.greeting(), 'sf-session 1');
  assert.deepEqual(await session.ask('role'), { code: 0, output: 'replica' });
  assert.match((await session.ask('position')).output, /^\d+$/);
  assert.deepEqual(await session.ask('follow'), { code: 2, output: '' });
  const promoted = await session.ask('promote');
  assert.equal(promoted.code, 0, session.errors.join(''));
  assert.match(promoted.output, /^primary \(promoted; offset \d+\)$/);
  assert.deepEqual(await session.ask('role'), { code: 0, output: 'primary' });
  await session.end();
  assert.match(await sfRedisOk(replica, 'promote'), /^primary \(already; offset \d+\)$/);
  assert.equal(await sfRedisOk(replica, 'role'), 'primary');
  // received: a primary without a connected replica refuses writes rather than take them alone.
  assert.match(await redisCli(replica.port, bound, 'SET', 'k', 'w'), /NOREPLICAS/);
  await sfRedisOk(replica, 'configure', 'async', 'batched');
  assert.equal(await redisCli(replica.port, bound, 'SET', 'k', 'w'), 'OK');

  // Unbinding: the user is gone.
  for (const statement of entry.binding.drop) await redisCli(primary.port, admin, ...fill(statement));
  assert.match(await redisCli(primary.port, bound, 'GET', 'k'), /WRONGPASS|NOAUTH/);
});
