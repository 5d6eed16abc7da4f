import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { docker } from '@service-foundry/test-support/docker';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import type Dockerode from 'dockerode';
import { ensureServiceImage } from '../src/index.js';
import { execIn } from './postgres-nodes.js';
import { createServiceContainer, type TestContainerTls } from './service-containers.js';

/**
 * TLS of the catalog's Redis image, containers made the way the agent makes them: one
 * port (6379) speaks TLS only, to clients and replicas; a replica streams from its
 * upstream over TLS (`tls-replication yes`) and checks the upstream's certificate against
 * the cluster CA. Redis checks no host name (its replication is libpq's verify-ca).
 */

interface RedisNode {
  name: string;
  container: Dockerode.Container;
  port: number;
}

/** The host's redis-cli; its output, error replies included, whatever its exit code. */
function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('redis-cli', args, { timeout: 15_000 }, (error, stdout, stderr) =>
      resolve(`${stdout}${stderr}${error && !stdout && !stderr ? error.message : ''}`.trim()),
    );
  });
}

describe('redis image: TLS for clients and replication', () => {
  const id = randomBytes(4).toString('hex');
  const network = `sf-redistls-${id}`;
  const labels = { 'sf.test': 'redis-tls', 'sf.test.run': id };
  const adminPassword = randomBytes(18).toString('base64url');
  const replicationPassword = randomBytes(18).toString('base64url');
  const containers: Dockerode.Container[] = [];
  const volumes: string[] = [];
  let entry: CatalogEntry;
  let pki: TestPki;
  let otherCa: TestPki;
  let primary: RedisNode;

  before(async () => {
    const found = (await Catalog.load()).byServiceName('redis');
    assert.ok(found?.replication);
    entry = found;
    await ensureServiceImage(entry, { docker, onProgress: () => {} });
    await docker.createNetwork({ Name: network, Driver: 'bridge', Labels: labels });
    pki = await makeTestPki([{ name: 'redis-node', address: '127.0.0.1' }]);
    otherCa = await makeTestPki([{ name: 'redis-node', address: '127.0.0.1' }]);
  });
  after(async () => {
    for (const container of containers) await container.remove({ force: true, v: true }).catch(() => {});
    for (const volume of volumes)
      await docker
        .getVolume(volume)
        .remove()
        .catch(() => {});
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => {});
    await pki?.remove();
    await otherCa?.remove();
  });

  async function start(suffix: string, upstream: string | undefined, tls: TestContainerTls): Promise<RedisNode> {
    const recipe = entry.replication;
    assert.ok(recipe);
    const name = `sf-redistls-${id}-${suffix}`;
    const port = await freePort();
    await docker.createVolume({ Name: name, Labels: labels });
    volumes.push(name);
    const env: Record<string, string> = {
      [recipe.env.role]: upstream ? 'replica' : 'primary',
      [recipe.env.replicaName]: suffix,
      [recipe.env.replicationUser]: 'sf_replicator',
      ...(upstream ? { [recipe.env.upstreamHost]: upstream, [recipe.env.upstreamPort]: '6379' } : {}),
    };
    const container = await createServiceContainer(
      docker,
      entry,
      { adminPassword, replicationPassword },
      {
        name,
        Labels: labels,
        ExposedPorts: { '6379/tcp': {} },
        HostConfig: {
          NetworkMode: network,
          PortBindings: { '6379/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
          Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
        },
      },
      env,
      tls,
    );
    containers.push(container);
    await container.start();
    return { name, container, port };
  }

  /** A field of INFO replication, read inside the container over its local socket (TLS or not). */
  async function infoField(node: RedisNode, field: string): Promise<string | undefined> {
    const script =
      'REDISCLI_AUTH=$(cat "$REDIS_ADMIN_PASSWORD_FILE") redis-cli --no-auth-warning --user "$SF_ADMIN_USER" -s /run/redis/redis.sock INFO replication';
    const result = await execIn(docker, node.container, ['sh', '-c', script]);
    assert.equal(result.code, 0, result.stderr);
    return new RegExp(`^${field}:(.*)$`, 'm').exec(result.stdout.replaceAll('\r', ''))?.[1];
  }

  const ready = (node: RedisNode) =>
    waitFor(async () => (await execIn(docker, node.container, entry.runtime.readiness.exec)).code === 0, {
      description: `${node.name} ready`,
      timeoutMs: entry.runtime.readiness.timeoutSeconds * 1000,
      intervalMs: 200,
    });

  /** As the admin over TLS, the server checked against `caFile`. */
  const cli = (node: RedisNode, caFile: string, ...command: string[]) =>
    redisCli([
      ...['-h', '127.0.0.1', '-p', String(node.port), '--tls', '--cacert', caFile],
      ...['--user', entry.runtime.adminUser, '--pass', adminPassword, '--no-auth-warning', ...command],
    ]);

  test('a replica streams over TLS; clients need TLS and the cluster CA', async () => {
    primary = await start('p', undefined, { pki, node: 'redis-node' });
    await ready(primary);
    const replica = await start('r', `sf-redistls-${id}-p`, { pki, node: 'redis-node' });
    await ready(replica);
    assert.equal(await infoField(replica, 'master_link_status'), 'up');
    assert.equal(await infoField(primary, 'connected_slaves'), '1');
    // The only TCP port is the TLS one, so the link that is up is a TLS link.
    assert.equal(await cli(primary, pki.caFile, 'CONFIG', 'GET', 'port'), 'port\n0');
    assert.equal(await cli(primary, pki.caFile, 'CONFIG', 'GET', 'tls-replication'), 'tls-replication\nyes');
    assert.equal(await cli(replica, pki.caFile, 'CONFIG', 'GET', 'tls-port'), 'tls-port\n6379');

    assert.equal(await cli(primary, pki.caFile, 'SET', 'k', 'over-tls'), 'OK');
    await waitFor(async () => (await cli(replica, pki.caFile, 'GET', 'k')) === 'over-tls', {
      description: 'the write reaching the replica',
      timeoutMs: 15_000,
    });

    // Plaintext gets no answer; another CA does not verify the server.
    const plain = await redisCli([
      ...['-h', '127.0.0.1', '-p', String(primary.port), '--user', entry.runtime.adminUser],
      ...['--pass', adminPassword, '--no-auth-warning', 'PING'],
    ]);
    assert.doesNotMatch(plain, /PONG/);
    const impostor = await cli(primary, otherCa.caFile, 'PING');
    assert.doesNotMatch(impostor, /PONG/);
    assert.match(impostor, /certificate verify failed|SSL_connect failed|Could not negotiate a TLS connection/i);
  });

  test('a plaintext replicaof and a replica trusting another CA never link', async (t) => {
    const upstream = `sf-redistls-${id}-p`;
    // Run by hand without TLS: REPLICAOF over plaintext to the TLS-only port.
    const plain = await start('plain', upstream, false);
    // Another CA: TLS, but the primary's certificate does not verify.
    const foreign = await start('foreign', upstream, { pki: otherCa, node: 'redis-node' });
    const tryingSince = Date.now();
    // Redis logs why each attempt failed; the link never comes up.
    const expected: Array<[RedisNode, RegExp]> = [
      [plain, /Master did not respond to command during SYNC handshake|Error reading from MASTER/],
      [foreign, /Error condition on socket for SYNC: .*certificate verify failed/],
    ];
    for (const [node, why] of expected) {
      const failure = await waitFor(
        async () => {
          const logs = (await node.container.logs({ stdout: true, stderr: true })).toString();
          return why.exec(logs.split('MASTER <-> REPLICA sync started').slice(1).join(''))?.[0];
        },
        { description: `${node.name} failing to sync`, timeoutMs: 60_000, intervalMs: 500 },
      );
      t.diagnostic(`${node.name}: ${failure}`);
    }
    // Several attempts later (Redis retries every second) neither ever linked.
    await waitFor(
      async () => Date.now() - tryingSince > 5000 && (await infoField(plain, 'master_link_status')) === 'down',
      {
        description: 'the plaintext replica still unlinked after retries',
        timeoutMs: 30_000,
        intervalMs: 500,
      },
    );
    assert.equal(await infoField(foreign, 'master_link_status'), 'down');
    assert.equal(await infoField(primary, 'connected_slaves'), '1', 'only the TLS replica of the same CA is linked');
  });
});
