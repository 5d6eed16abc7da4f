import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import type Dockerode from 'dockerode';
import { createClient } from 'redis';
import { pack } from 'tar-stream';
import type { BindingTarget } from '../src/binding-driver-postgres.js';
import { RedisBindingDriver } from '../src/binding-driver-redis.js';

/**
 * The Redis binding driver against a real server: a container of the catalog's Redis
 * image, started the way the agent starts one (the catalog's env, the admin password as a
 * file put in before the first start), reached on a published port as the broker reaches
 * an instance through the router.
 */

const driver = new RedisBindingDriver();

/** The admin password as the agent delivers it: a file owned by the service's user, mode 0400. */
async function secretArchive(entry: CatalogEntry, adminPassword: string): Promise<Buffer> {
  const { dir, uid, gid } = entry.runtime.secretFiles;
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    archive.once('end', resolve);
    archive.once('error', reject);
  });
  archive.entry({ name: `${dir.slice(1)}/`, type: 'directory', mode: 0o500, uid, gid });
  archive.entry({ name: `${dir.slice(1)}/admin-password`, type: 'file', mode: 0o400, uid, gid }, adminPassword);
  archive.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** Logs in as `username` and runs one command; the reply, or the error's message. */
async function asUser(port: number, username: string, password: string, command: string[]): Promise<string> {
  const client = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: false },
    username,
    password,
    RESP: 2,
    disableClientInfo: true,
    maintNotifications: 'disabled',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return String(await client.sendCommand(command));
  } catch (error) {
    return (error as Error).message;
  } finally {
    if (client.isOpen) client.destroy();
  }
}

describe('broker: Redis binding users, against the catalog image', () => {
  let entry: CatalogEntry;
  let target: BindingTarget;
  /** A second server, standing for a replica the driver must reach directly. */
  let other: { host: string; port: number };
  const containers: Dockerode.Container[] = [];
  const names = [uniqueId('sf-broker-redis'), uniqueId('sf-broker-redis')];
  const adminPassword = randomBytes(18).toString('hex');

  async function startServer(name: string): Promise<number> {
    const image = entry.runtime.image;
    const port = await freePort();
    await docker.createVolume({ Name: name, Labels: { 'sf.test': 'broker' } });
    const { dir } = entry.runtime.secretFiles;
    const container = await docker.createContainer({
      name,
      Image: image,
      Labels: { 'sf.test': 'broker' },
      Env: Object.entries({
        ...entry.runtime.env,
        [entry.runtime.adminPasswordFileEnv]: `${dir}/admin-password`,
        SF_MAX_CONNECTIONS: String(entry.plans.small?.connections.service),
      }).map(([key, value]) => `${key}=${value}`),
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
      },
    });
    containers.push(container);
    await container.putArchive(await secretArchive(entry, adminPassword), { path: '/' });
    await container.start();
    await waitFor(async () => (await asUser(port, entry.runtime.adminUser, adminPassword, ['PING'])) === 'PONG', {
      description: `redis in ${name} to answer its admin`,
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    return port;
  }

  before(async () => {
    entry = (await Catalog.load()).byServiceName('redis') as CatalogEntry;
    assert.ok(entry, 'services-catalog/redis is in the catalog');
    const image = entry.runtime.image;
    await docker
      .getImage(image)
      .inspect()
      .catch(() => assert.fail(`image ${image} is missing: run \`sf images build\` first`));
    const [port, otherPort] = await Promise.all(names.map((name) => startServer(name)));
    const adminUser = entry.runtime.adminUser;
    target = { host: '127.0.0.1', port: port as number, database: '', adminUser, adminPassword, timeoutMs: 10_000 };
    other = { host: '127.0.0.1', port: otherPort as number };
  });

  after(async () => {
    for (const container of containers) await container.remove({ force: true, v: true }).catch(() => undefined);
    for (const name of names) {
      await docker
        .getVolume(name)
        .remove()
        .catch(() => undefined);
    }
  });

  it('makes and drops the user on each replica too; an unreachable replica is reported, not fatal', async () => {
    const username = 'sf_key_9';
    const password = randomBytes(16).toString('hex');
    const unreachable = { host: '127.0.0.1', port: await freePort() };
    const withReplicas = { ...target, replicas: [other, unreachable] };
    const made = await driver.createUser(withReplicas, entry.binding, username, password);
    assert.equal(made.length, 1, made.join('\n'));
    assert.match(made[0] ?? '', new RegExp(`^replica 127\\.0\\.0\\.1:${unreachable.port}: redis: .*ECONNREFUSED`));
    assert.ok(!(made[0] ?? '').includes(password));
    for (const port of [target.port, other.port]) {
      assert.equal(await asUser(port, username, password, ['PING']), 'PONG', `the user logs in on port ${port}`);
    }
    assert.deepEqual(await driver.dropUser({ ...target, replicas: [other] }, entry.binding, username), []);
    for (const port of [target.port, other.port]) {
      assert.match(await asUser(port, username, password, ['PING']), /WRONGPASS/, `the user is gone on port ${port}`);
    }
  });

  it("makes a user with the catalog's commands that works on data, not on the server, and drops it", async () => {
    const username = 'sf_key_1';
    const password = randomBytes(16).toString('hex');
    await driver.createUser(target, entry.binding, username, password);
    assert.equal(await asUser(target.port, username, password, ['SET', 'greeting', 'hello']), 'OK');
    assert.equal(await asUser(target.port, username, password, ['GET', 'greeting']), 'hello');
    assert.match(await asUser(target.port, username, password, ['CONFIG', 'GET', 'maxclients']), /NOPERM/);

    await driver.dropUser(target, entry.binding, username);
    assert.match(await asUser(target.port, username, password, ['PING']), /WRONGPASS/);
    await driver.dropUser(target, entry.binding, username);
  });

  it('keeps passwords out of error messages', async () => {
    const password = randomBytes(16).toString('hex');
    // Redis quotes the arguments of a command it does not know: the password among them.
    const recipe = { ...entry.binding, create: ['NOSUCHCOMMAND {{username}} {{password}}'] };
    const refused = await driver.createUser(target, recipe, 'sf_key_2', password).then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    assert.match(refused, /^redis: .*unknown command/i);
    assert.ok(!refused.includes(password), refused);

    const wrongAdmin = { ...target, adminPassword: `${adminPassword}x` };
    const denied = await driver.dropUser(wrongAdmin, entry.binding, 'sf_key_2').then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    assert.match(denied, /^redis: .*WRONGPASS/);
    assert.ok(!denied.includes(adminPassword), denied);
  });

  it('a refused connection keeps its code, so the caller can try again', async () => {
    const closed = { ...target, port: await freePort() };
    await assert.rejects(
      driver.dropUser(closed, entry.binding, 'sf_key_3'),
      (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED' && error.message.startsWith('redis: '),
    );
  });
});
