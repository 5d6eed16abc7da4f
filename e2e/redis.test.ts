import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { killNode, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { clusterCaFile } from '@service-foundry/test-support/cluster-ca';
import { containersOf, docker } from '@service-foundry/test-support/docker';
import { redisCli, redisCliRaw } from '@service-foundry/test-support/redis-cli';

interface Credentials {
  host: string;
  port: number;
  username: string;
  password: string;
  uri: string;
}

interface Detail {
  id: string;
  phase: string;
  primary: { node: string; epoch: number } | null;
  replicaDetails: Array<{ ordinal: number; node: string; state: string }>;
}

describe('Redis ha-small: ACL binding through the router, replicated writes survive a failover', () => {
  let cluster: TestCluster;
  let credentials: Credentials;
  const detail = async (): Promise<Detail> =>
    JSON.parse((await cluster.sf('service', 'r1', '--json')).stdout) as Detail;
  /** The lost node comes back and rejoins as a replica on a fresh volume. */
  const bringBack = async (node: string): Promise<void> => {
    assert.equal((await cluster.sf('unfence', node)).code, 0);
    assert.equal((await cluster.sf('up')).code, 0);
    await waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas again',
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  };

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('creates a three-server Redis and a key that logs in with the real redis-cli through the router', async () => {
    const started = Date.now();
    const created = await cluster.sf('create-service', 'redis', 'ha-small', 'r1');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    console.log(`# redis ha-small create-service to succeeded: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const key = await cluster.sf('create-service-key', 'r1', 'k1', '--json');
    assert.equal(key.code, 0, key.stderr);
    credentials = JSON.parse(key.stdout) as Credentials;
    assert.equal(credentials.host, '127.0.0.1');
    assert.equal(
      credentials.uri,
      `rediss://${credentials.username}:${credentials.password}@127.0.0.1:${credentials.port}`,
    );
    assert.equal(await redisCli(credentials, 'SET', 'k', 'v'), 'OK');
    assert.equal(await redisCli(credentials, 'GET', 'k'), 'v');
    // The default user is disabled: no anonymous access through the router. And no plaintext at all.
    const server = ['-h', '127.0.0.1', '-p', String(credentials.port)];
    assert.match(await redisCliRaw([...server, '--tls', '--cacert', clusterCaFile() ?? '', 'GET', 'k']), /NOAUTH/);
    assert.doesNotMatch(await redisCliRaw([...server, 'GET', 'k']), /NOAUTH|^v$/);
  });

  it('after the primary node is killed, GET through the router returns the replicated value', async () => {
    const before = await detail();
    assert.equal(before.replicaDetails.filter((r) => r.state === 'running').length, 3);
    const oldPrimary = before.primary;
    assert.ok(oldPrimary);
    // Both replicas have the write before the fault (WAIT counts acknowledged replicas).
    assert.equal(await redisCli(credentials, 'WAIT', '2', '5000'), '2');
    // …and the bound user: Redis does not replicate ACLs, sf-redis sync-users copies them.
    const replicas = (await containersOf(before.id)).filter((c) => c.Labels['sf.node'] !== oldPrimary.node);
    assert.equal(replicas.length, 2);
    for (const replica of replicas) {
      await waitFor(
        async () => {
          const exec = await docker.getContainer(replica.Id).exec({
            // The server's local socket: its TCP port speaks TLS only.
            Cmd: [
              'redis-cli',
              '-s',
              '/run/redis/redis.sock',
              '--no-auth-warning',
              '--user',
              credentials.username,
              'GET',
              'k',
            ],
            Env: [`REDISCLI_AUTH=${credentials.password}`],
            AttachStdout: true,
            AttachStderr: true,
          });
          const stream = await exec.start({ hijack: true, stdin: false });
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          await new Promise((resolve) => stream.on('end', resolve));
          return Buffer.concat(chunks).toString().includes('v');
        },
        { description: `the bound user reads k on replica ${replica.Names[0]}`, timeoutMs: 15_000, intervalMs: 250 },
      );
    }

    await killNode(cluster, oldPrimary.node);
    const faultAt = Date.now();
    await waitFor(async () => (await redisCli(credentials, 'GET', 'k')) === 'v', {
      description: 'GET k through the router after failover',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    console.log(`# redis failover: GET through the router again after ${((Date.now() - faultAt) / 1000).toFixed(2)} s`);
    const now = await detail();
    assert.ok(now.primary && now.primary.node !== oldPrimary.node, 'a replica on another node is primary');
    assert.ok(now.primary.epoch > oldPrimary.epoch, 'under a new epoch');
    // The new primary takes writes (received: a replica is still connected).
    await waitFor(async () => (await redisCli(credentials, 'SET', 'k2', 'after')) === 'OK', {
      description: 'a write accepted by the new primary',
      timeoutMs: 30_000,
      intervalMs: 250,
    });

    await bringBack(oldPrimary.node);
  });

  it('a key made, and one deleted, just before the primary node is lost: the new primary knows both', async () => {
    const before = await detail();
    const oldPrimary = before.primary;
    assert.ok(oldPrimary);
    const revokedKey = await cluster.sf('create-service-key', 'r1', 'k-revoked', '--json');
    assert.equal(revokedKey.code, 0, revokedKey.stderr);
    const revoked = JSON.parse(revokedKey.stdout) as Credentials;
    assert.equal(await redisCli(revoked, 'PING'), 'PONG');
    assert.equal((await cluster.sf('delete-service-key', 'r1', 'k-revoked')).code, 0);
    const freshKey = await cluster.sf('create-service-key', 'r1', 'k-fresh', '--json');
    assert.equal(freshKey.code, 0, freshKey.stderr);
    const fresh = JSON.parse(freshKey.stdout) as Credentials;
    // At once: the replicas' own copy loop (once a second) has had no time to run.
    await killNode(cluster, oldPrimary.node);
    await waitFor(async () => (await redisCli(fresh, 'SET', 'fresh', '1')) === 'OK', {
      description: 'the key made just before the loss writes through the new primary',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const now = await detail();
    assert.ok(now.primary && now.primary.node !== oldPrimary.node, 'a replica on another node is primary');
    assert.match(await redisCli(revoked, 'PING'), /WRONGPASS|NOAUTH/, 'the deleted key stays refused');

    await bringBack(oldPrimary.node);
  });

  it('deleting the key removes the ACL user; deleting the service removes its containers', async () => {
    const id = (await detail()).id;
    const deleted = await cluster.sf('delete-service-key', 'r1', 'k1');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(await redisCli(credentials, 'GET', 'k'), /WRONGPASS|NOAUTH/);
    const gone = await cluster.sf('delete-service', 'r1');
    assert.equal(gone.code, 0, gone.stderr);
    await waitFor(async () => (await containersOf(id)).length === 0, {
      description: 'the instance containers removed',
      timeoutMs: 30_000,
    });
  });
});
