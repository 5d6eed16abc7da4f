import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadContainerTls, replicaSecrets, secretFilesArchive } from '@service-foundry/agent';
import { Catalog, type CatalogEntry, freePort, planClientTls, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import Dockerode from 'dockerode';
import { ensureServiceImage } from '../src/index.js';
import { execIn } from './postgres-nodes.js';
import { createServiceContainer, redisCliTls, testPki, testPlan } from './service-containers.js';

/**
 * Password rotation of the Redis image as the agent drives it (`sf rotate-credentials`):
 * new password files (and the replaced ones as `.previous`) put into a running primary and
 * replica, then `rotatePasswords accept-previous` on every server, then `new-only`. What a
 * user relies on: no moment without readiness or replication, both passwords valid in
 * between, only the new ones after, and no clear password in any process's arguments or
 * environment on the way.
 */

const docker = new Dockerode({ socketPath: '/var/run/docker.sock' });
const replicationUser = 'sf_replicator';

interface RedisNode {
  name: string;
  container: Dockerode.Container;
  port: number;
}

/** The host's redis-cli over TLS; its output, error replies included, whatever its exit code. */
async function redisCli(node: RedisNode, auth: { user: string; password: string }, ...command: string[]) {
  const args = ['-h', '127.0.0.1', '-p', String(node.port), '--no-auth-warning', ...(await redisCliTls())];
  return new Promise<string>((resolve) => {
    execFile(
      'redis-cli',
      [...args, '--user', auth.user, '--pass', auth.password, ...command],
      { timeout: 15_000 },
      (_e, out, err) => resolve(`${out}${err}`.trim()),
    );
  });
}

test('redis image: passwords rotated without downtime (rotate-passwords)', { timeout: 5 * 60_000 }, async (t) => {
  const entry = (await Catalog.load()).byServiceName('redis') as CatalogEntry;
  const recipe = entry.replication;
  const rotateCommand = entry.rotatePasswords;
  assert.ok(recipe && rotateCommand, 'the redis entry has a replication recipe and rotatePasswords');
  const recipeEnv = recipe.env;
  await ensureServiceImage(entry, { docker, onProgress: () => {} });

  const old = { admin: randomBytes(18).toString('base64url'), replication: randomBytes(18).toString('base64url') };
  const next = { admin: randomBytes(18).toString('base64url'), replication: randomBytes(18).toString('base64url') };
  const allPasswords = [old.admin, old.replication, next.admin, next.replication];
  const admin = (password: string) => ({ user: entry.runtime.adminUser, password });
  const replicator = (password: string) => ({ user: replicationUser, password });

  const prefix = uniqueId('sf-redis-rotate');
  const labels = { 'sf.test': 'redis-rotate' };
  const containers: Dockerode.Container[] = [];
  const volumes: Dockerode.Volume[] = [];
  const network = await docker.createNetwork({ Name: prefix, Labels: labels });
  t.after(async () => {
    const ignore = () => {};
    for (const container of containers) await container.remove({ force: true, v: true }).catch(ignore);
    for (const volume of volumes) await volume.remove().catch(ignore);
    await network.remove().catch(ignore);
  });

  async function startNode(suffix: string, upstream?: string): Promise<RedisNode> {
    const name = `${prefix}-${suffix}`;
    const port = await freePort();
    await docker.createVolume({ Name: name, Labels: labels });
    volumes.push(docker.getVolume(name));
    const env: Record<string, string> = {
      [recipeEnv.role]: upstream ? 'replica' : 'primary',
      [recipeEnv.replicaName]: suffix,
      [recipeEnv.replicationUser]: replicationUser,
      ...(upstream ? { [recipeEnv.upstreamHost]: upstream, [recipeEnv.upstreamPort]: String(entry.runtime.port) } : {}),
    };
    const container = await createServiceContainer(
      docker,
      entry,
      { adminPassword: old.admin, replicationPassword: old.replication },
      {
        name,
        Labels: labels,
        HostConfig: {
          NetworkMode: prefix,
          PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
          Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
        },
      },
      env,
    );
    containers.push(container);
    await container.start();
    const node = { name, container, port };
    await waitFor(async () => (await sfRedis(node, 'ping')).code === 0, {
      description: `${name} ready`,
      timeoutMs: 60_000,
    });
    return node;
  }
  const sfRedis = (node: RedisNode, ...args: string[]) => execIn(docker, node.container, ['sf-redis', ...args]);
  async function sfRedisOk(node: RedisNode, ...args: string[]): Promise<string> {
    const result = await sfRedis(node, ...args);
    assert.equal(result.code, 0, `sf-redis ${args.join(' ')} on ${node.name}: ${result.stderr}`);
    return result.stdout;
  }
  /** The catalog's command, filled in the way the agent does. */
  const rotate = (node: RedisNode, phase: string) =>
    execIn(
      docker,
      node.container,
      rotateCommand.map((word) => word.replace('{{phase}}', phase)),
    );

  /** Reads every process's arguments and environment in the node's container `sweeps` times over. */
  async function assertNoPasswordInProcesses(step: string, node: RedisNode, sweeps = 1): Promise<void> {
    const script = `i=0; while [ $i -lt ${sweeps} ]; do for p in /proc/[0-9]*; do cat $p/cmdline $p/environ; echo; done 2>/dev/null; i=$((i+1)); done`;
    const seen = (await execIn(docker, node.container, ['sh', '-c', script])).stdout;
    assert.ok(seen.includes('redis-server'), 'the processes were read');
    for (const password of allPasswords)
      assert.ok(!seen.includes(password), `${step}: no process of ${node.name} shows a password`);
  }
  const assertNoPasswordAnywhere = async (step: string) => {
    for (const node of nodes) await assertNoPasswordInProcesses(step, node);
  };
  /** Runs a phase while the node's processes are swept, so that sf-redis's own short-lived redis-cli runs are seen too. */
  async function rotateWatched(node: RedisNode, phase: string): Promise<string> {
    const [result] = await Promise.all([
      rotate(node, phase),
      assertNoPasswordInProcesses(`${phase} on ${node.name}`, node, 30),
    ]);
    assert.equal(result.code, 0, `${phase} on ${node.name}: ${result.stderr}`);
    return result.stdout;
  }
  /** What a rotation changes on a server: its users' hashes, its masterauth and its config file. */
  const serverState = async (node: RedisNode) =>
    [
      await redisCli(node, admin(next.admin), 'ACL', 'LIST'),
      await redisCli(node, admin(next.admin), 'CONFIG', 'GET', 'masterauth'),
      (await execIn(docker, node.container, ['cat', '/data/redis.conf'])).stdout,
    ].join('\n');
  /** The id of the replica's connection on the primary (a new one after each relink). */
  const replicaLinkId = async (adminPassword = next.admin) =>
    (await redisCli(primary, admin(adminPassword), 'CLIENT', 'LIST', 'TYPE', 'replica')).match(/^id=(\d+) /)?.[1];
  async function assertReplicates(key: string): Promise<void> {
    assert.equal(await redisCli(primary, admin(next.admin), 'SET', key, 'v'), 'OK');
    await waitFor(async () => (await redisCli(replica, admin(next.admin), 'GET', key)) === 'v', {
      description: `${key} on the replica`,
      timeoutMs: 15_000,
    });
  }

  const primary = await startNode('r0');
  const replica = await startNode('r1', primary.name);
  const nodes = [primary, replica];
  await assertNoPasswordAnywhere('started');

  // 1. The agent puts the new files (and the replaced passwords as .previous) into both.
  const clients = planClientTls(entry, testPlan);
  assert.ok(clients !== 'none', 'the plan serves TLS');
  const material = await loadContainerTls((await testPki()).serviceTls('node-a'), 'container');
  const files = replicaSecrets(
    entry.runtime,
    {
      adminUser: entry.runtime.adminUser,
      adminPassword: next.admin,
      replicationUser,
      replicationPassword: next.replication,
      previous: { adminPassword: old.admin, replicationPassword: old.replication },
    },
    {
      replicationPasswordFileEnv: recipeEnv.replicationPasswordFile,
      tls: { material, clients },
    },
  );
  const archive = await secretFilesArchive(files.secretFiles);
  for (const node of nodes) await node.container.putArchive(archive, { path: '/' });
  // The servers still have the old passwords: readiness and the other commands log in with
  // the .previous files, and so does the replica's user sync (its upstream login too).
  for (const node of nodes) assert.equal(await sfRedisOk(node, 'ping'), 'PONG');
  assert.equal(await sfRedisOk(replica, 'role'), 'replica');
  const bound = { user: 'u_rotate', password: randomBytes(12).toString('hex') };
  const rules = ['on', `>${bound.password}`, '~*', '+ping', '+@read'];
  assert.equal(await redisCli(primary, admin(old.admin), 'ACL', 'SETUSER', bound.user, ...rules), 'OK');
  await waitFor(async () => (await redisCli(replica, bound, 'PING')) === 'PONG', {
    description: 'user synced',
    timeoutMs: 15_000,
  });
  await assertNoPasswordAnywhere('files put');

  // 2. accept-previous, replica first: old and new passwords both log in everywhere, and
  // the replica's link (logged in with the old password) is not dropped.
  const linkBefore = await replicaLinkId(old.admin);
  assert.ok(linkBefore, 'the replica is linked');
  const accepting =
    /^accept-previous: sf-admin accepts 2 passwords, sf_replicator accepts 2 passwords, masterauth current \(changed\)$/;
  for (const node of [replica, primary]) assert.match(await rotateWatched(node, 'accept-previous'), accepting);
  assert.equal(await replicaLinkId(), linkBefore, 'ACL SETUSER leaves the replication link up');
  for (const node of nodes) {
    for (const auth of [admin(old.admin), admin(next.admin), replicator(old.replication), replicator(next.replication)])
      assert.equal(await redisCli(node, auth, 'PING'), 'PONG', `${auth.user} logs in to ${node.name}`);
  }
  // Idempotent: a second run sets nothing.
  for (const node of nodes) {
    const before = await serverState(node);
    assert.match(await rotateWatched(node, 'accept-previous'), /\(unchanged\)$/);
    assert.equal(await serverState(node), before);
  }

  // 3. new-only: the agent puts the files again without the replaced passwords (empty
  // .previous files), then only the new passwords log in, on both servers, for both users.
  const { previous: _replaced, ...current } = {
    adminUser: entry.runtime.adminUser,
    adminPassword: next.admin,
    replicationUser,
    replicationPassword: next.replication,
    previous: undefined,
  };
  const currentFiles = replicaSecrets(entry.runtime, current, {
    replicationPasswordFileEnv: recipeEnv.replicationPasswordFile,
    tls: { material, clients },
  });
  const currentArchive = await secretFilesArchive(currentFiles.secretFiles);
  for (const node of nodes) await node.container.putArchive(currentArchive, { path: '/' });
  for (const node of [replica, primary]) {
    assert.match(
      await rotateWatched(node, 'new-only'),
      /^new-only: sf-admin accepts 1 password, sf_replicator accepts 1 password, masterauth current \(changed\)$/,
    );
    const before = await serverState(node);
    assert.match(await rotateWatched(node, 'new-only'), /\(unchanged\)$/);
    assert.equal(await serverState(node), before);
  }
  for (const node of nodes) {
    assert.equal(await redisCli(node, admin(next.admin), 'PING'), 'PONG');
    assert.equal(await redisCli(node, replicator(next.replication), 'PING'), 'PONG');
    assert.match(await redisCli(node, admin(old.admin), 'PING'), /WRONGPASS/);
    assert.match(await redisCli(node, replicator(old.replication), 'PING'), /WRONGPASS/);
    assert.equal(await sfRedisOk(node, 'ping'), 'PONG');
  }
  assert.match(await redisCli(replica, admin(next.admin), 'INFO', 'replication'), /master_link_status:up/);
  await assertReplicates('after-rotation');

  // 4. The replica relinks with the new password: after its link is cut, and after a
  // restart (the rotation was written to redis.conf).
  assert.match(await redisCli(primary, admin(next.admin), 'CLIENT', 'KILL', 'TYPE', 'replica'), /^[1-9]/);
  await waitFor(async () => ![undefined, linkBefore].includes(await replicaLinkId()), {
    description: 'relinked',
    timeoutMs: 15_000,
  });
  await assertReplicates('after-relink');
  await replica.container.restart({ t: 10 });
  await waitFor(async () => (await sfRedis(replica, 'ping')).code === 0, {
    description: 'replica ready',
    timeoutMs: 60_000,
  });
  assert.match(await redisCli(replica, admin(old.admin), 'PING'), /WRONGPASS/);
  await assertReplicates('after-restart');

  // 5. Volumes whose servers hold older passwords than the files (as after a restore of a
  // backup taken before a rotation): on start, the platform's own users take the files'
  // passwords; binding users stay as the volume has them.
  const third = { admin: randomBytes(18).toString('base64url'), replication: randomBytes(18).toString('base64url') };
  allPasswords.push(third.admin, third.replication);
  const thirdFiles = replicaSecrets(
    entry.runtime,
    {
      adminUser: entry.runtime.adminUser,
      adminPassword: third.admin,
      replicationUser,
      replicationPassword: third.replication,
    },
    { replicationPasswordFileEnv: recipeEnv.replicationPasswordFile, tls: { material, clients } },
  );
  const thirdArchive = await secretFilesArchive(thirdFiles.secretFiles);
  for (const node of nodes) await node.container.stop({ t: 10 });
  for (const node of nodes) await node.container.putArchive(thirdArchive, { path: '/' });
  for (const node of nodes) await node.container.start();
  for (const node of nodes) {
    await waitFor(async () => (await sfRedis(node, 'ping')).code === 0, {
      description: `${node.name} ready with the files' passwords`,
      timeoutMs: 60_000,
    });
    assert.equal(await redisCli(node, admin(third.admin), 'PING'), 'PONG');
    assert.match(await redisCli(node, admin(next.admin), 'PING'), /WRONGPASS/);
    assert.equal(await redisCli(node, bound, 'PING'), 'PONG', `the binding user is kept on ${node.name}`);
  }
  await waitFor(
    async () => /master_link_status:up/.test(await redisCli(replica, admin(third.admin), 'INFO', 'replication')),
    { description: 'the replica linked with the files’ replication password', timeoutMs: 30_000 },
  );
  await assertNoPasswordAnywhere('restarted on older volumes');

  // 6. Usage errors, as for the other commands.
  assert.equal((await rotate(primary, 'both')).code, 2);
  assert.equal((await sfRedis(primary, 'rotate-passwords')).code, 2);
  await assertNoPasswordAnywhere('done');
});
