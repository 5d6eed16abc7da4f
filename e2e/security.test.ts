import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  decodeRecord,
  EtcdPermissionDeniedError,
  type InstanceSecret,
  Keyspace,
  readSealed,
  SecretBox,
  sealedEnvelopeCodec,
  secretCodec,
  waitFor,
} from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { asLocalUser, nobody, processTexts } from '@service-foundry/test-support/attacker';
import { osb, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { perRouterUris } from '@service-foundry/test-support/cluster-ca';
import { containersOf, docker } from '@service-foundry/test-support/docker';
import { psql } from '@service-foundry/test-support/psql';

interface Key {
  host: string;
  port: number;
  username: string;
  password: string;
  uri: string;
}

/**
 * Every attack of the trust-boundaries review, re-run on a fresh `sf up` the way the
 * attacker would: as another local user, with a stolen component identity or etcd dump, as
 * an app developer holding a key, as an anonymous TCP client, with the platform's OSB
 * credential and as an operator. Each asserts the attack fails and nothing changed.
 * docs/security.md maps every claim of the threat model to these tests.
 */
describe('trust boundaries on a fresh platform, tried as each attacker', () => {
  let cluster: TestCluster;
  let instanceId = '';
  let key1: Key;
  let secret: InstanceSecret;
  let clusterFile: Record<string, unknown>;
  const keys = new Keyspace('/sf');
  const name = 'sec-db';
  const sfJson = async <T>(...args: string[]): Promise<T> => {
    const res = await cluster.sf(...args, '--json');
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as T;
  };
  const newKey = (key: string) => sfJson<Key>('create-service-key', name, key);
  const as = (key: Key, sql: string, database = 'sf') => {
    // One router's URI: WHATWG URLs cannot hold libpq's host list.
    const uri = new URL(perRouterUris(key.uri)[0] as string);
    uri.pathname = `/${database}`;
    return psql(uri.toString(), sql);
  };

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
    const created = await cluster.sf('create-service', 'postgres', 'small', name);
    assert.equal(created.code, 0, created.stderr);
    instanceId = (await sfJson<{ id: string }>('service', name)).id;
    key1 = await newKey('app-1');
    clusterFile = JSON.parse(await readFile(join(cluster.home, 'cluster.json'), 'utf8')) as Record<string, unknown>;
    const box = await SecretBox.fromKeyFile(join(cluster.home, 'pki', 'secrets.key'));
    const etcd = cluster.etcdAsRoot();
    try {
      const stored = await readSealed(etcd, box, secretCodec, keys.secret(instanceId));
      assert.ok(stored, 'the instance secret is stored');
      secret = stored.value;
    } finally {
      etcd.close();
    }
    assert.ok(secret.adminPassword.length >= 16);
  });
  after(async () => {
    await cluster?.destroy();
  });

  /** Every credential the platform holds for this cluster; none may leak anywhere below. */
  const credentials = () =>
    [
      secret.adminPassword,
      secret.replicationPassword,
      key1.password,
      clusterFile.brokerPassword,
      clusterFile.osbPassword,
      clusterFile.viewerPassword,
      clusterFile.volumeSecret,
    ].filter((c): c is string => typeof c === 'string' && c.length > 0);

  describe('another local user (uid 65534)', () => {
    it('cannot reach etcd: no client certificate, no TLS handshake, in clear or not', async () => {
      const port = String(clusterFile.etcdClientPort);
      const body = JSON.stringify({
        key: Buffer.from('/sf/secrets/').toString('base64'),
        range_end: 'L3NmL3NlY3JldHMw',
      });
      for (const url of [`https://127.0.0.1:${port}/v3/kv/range`, `http://127.0.0.1:${port}/v3/kv/range`]) {
        const res = await asLocalUser(nobody, 'curl', ['-sk', '-m', '5', url, '-d', body]);
        assert.doesNotMatch(res.out, /"kvs"|"count"/, `${url}: ${res.out}`);
        assert.equal(res.ok, false, `curl must fail at the handshake: ${res.out}`);
      }
    });

    it("cannot read the platform's state folder: keys, certificates, configs, logs", async () => {
      for (const path of [
        join(cluster.home, 'pki', 'root.key'),
        join(cluster.home, 'pki', 'secrets.key'),
        join(cluster.home, 'cluster.json'),
        join(cluster.home, 'cli.json'),
        join(cluster.home, 'config', 'broker-1.json'),
        join(cluster.home, 'logs', 'broker-1.log'),
      ]) {
        await access(path);
        const res = await asLocalUser(nobody, 'cat', [path]);
        assert.equal(res.ok, false, path);
        assert.match(res.out, /Permission denied/, path);
      }
    });

    it('finds no credential in any process environment or command line, nor in docker inspect', async () => {
      for (const { pid, text } of await processTexts()) {
        for (const credential of credentials()) assert.ok(!text.includes(credential), `pid ${pid} shows a credential`);
      }
      for (const container of await containersOf(instanceId)) {
        const inspected = JSON.stringify(await docker.getContainer(container.Id).inspect());
        for (const credential of credentials()) assert.ok(!inspected.includes(credential), 'docker inspect');
      }
    });
  });

  describe('whoever gets hold of etcd data or a component identity', () => {
    it('finds no credential in clear in a full dump of the keyspace', async () => {
      const etcd = cluster.etcdAsRoot();
      try {
        const all = await etcd.getAll().prefix('/').strings();
        const dump = JSON.stringify(all);
        for (const credential of credentials()) assert.ok(!dump.includes(credential), 'a credential in the dump');
        for (const [key, value] of Object.entries(all)) {
          if (
            key.startsWith(keys.secrets()) ||
            key.startsWith(keys.bindings()) ||
            key.startsWith(keys.allFenceDevices())
          ) {
            assert.equal(decodeRecord(sealedEnvelopeCodec, key, value).sealed, 'sf-aead-1', key);
          }
        }
      } finally {
        etcd.close();
      }
    });

    it("a stolen router identity reads routes only; an agent's cannot touch another node", async () => {
      const router = cluster.etcdAs('sf-router');
      const agent = cluster.etcdAs('sf-agent.node-1');
      try {
        assert.ok((await router.getAll().prefix(keys.routes()).keys()).length >= 1);
        await assert.rejects(router.get(keys.secret(instanceId)).string(), EtcdPermissionDeniedError);
        await assert.rejects(router.put(keys.route(instanceId)).value('{}').exec(), EtcdPermissionDeniedError);
        await assert.rejects(router.delete().key(keys.instance(instanceId)).exec(), EtcdPermissionDeniedError);
        await assert.rejects(agent.put(keys.node('node-2')).value('{}').exec(), EtcdPermissionDeniedError);
        await assert.rejects(
          agent
            .put(keys.assignment('node-2', instanceId, 0))
            .value('{}')
            .exec(),
          EtcdPermissionDeniedError,
        );
        await assert.rejects(agent.put(keys.route(instanceId)).value('{}').exec(), EtcdPermissionDeniedError);
      } finally {
        router.close();
        agent.close();
      }
    });
  });

  describe('an app developer holding a key', () => {
    it("cannot become superuser by planting code in the admin's path", async () => {
      const plant = await as(
        key1,
        `CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE plpgsql AS $$
           BEGIN EXECUTE 'ALTER ROLE ${key1.username} SUPERUSER'; RETURN 0; END $$;
         CREATE FUNCTION public.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql AS $$
           BEGIN EXECUTE 'ALTER ROLE ${key1.username} SUPERUSER'; END $$;`,
      );
      assert.ok(plant.ok, `planting functions in the shared schema is allowed: ${plant.err}`);
      const settings = await as(key1, 'ALTER DATABASE sf SET search_path = public, pg_catalog');
      assert.equal(settings.ok, false);
      assert.match(settings.err, /must be owner|permission denied/);
      const roleSetting = await as(key1, 'ALTER ROLE postgres SET search_path = public, pg_catalog');
      assert.equal(roleSetting.ok, false);
      // The admin's session now binds a new key: it must not run the planted code.
      await newKey('app-2');
      const su = await as(key1, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      assert.equal(su.out, 'f');
      const program = await as(key1, "COPY (SELECT 1) TO PROGRAM 'id > /tmp/pwned'");
      assert.equal(program.ok, false);
      assert.match(program.err, /permission denied|must be superuser|pg_execute_server_program/);
    });

    it('cannot drop, rename or reconfigure the database, nor connect to another one', async () => {
      for (const database of ['postgres', 'template1']) {
        const other = await as(key1, 'SELECT 1', database);
        assert.equal(other.ok, false, database);
      }
      for (const sql of ['DROP DATABASE sf', 'ALTER DATABASE sf RENAME TO gone', 'ALTER DATABASE sf OWNER TO sf_app']) {
        const res = await as(key1, sql);
        assert.equal(res.ok, false, sql);
      }
      const service = await sfJson<{ phase: string }>('service', name);
      assert.equal(service.phase, 'ready');
      const another = await newKey('app-3');
      assert.equal((await as(another, 'SELECT current_database()')).out, 'sf', 'new keys still bind');
    });

    it("shares the app's data with every key; deleting a key ends its open sessions", async () => {
      assert.ok((await as(key1, 'CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)')).ok);
      const key4 = await newKey('app-4');
      assert.equal((await as(key4, 'SELECT count(*) FROM orders')).out, '2', 'a new key reads what the app made');
      assert.ok((await as(key4, 'INSERT INTO orders VALUES (3)')).ok);
      const session = spawn('psql', [key4.uri, '-X', '-q', '-c', 'SELECT pg_sleep(120)'], { stdio: 'ignore' });
      try {
        // Another role's session shows its user (not its query) to an unprivileged viewer.
        const sessions = `SELECT count(*) FROM pg_stat_activity WHERE usename = '${key4.username}'`;
        await waitFor(async () => (await as(key1, sessions)).out === '1', {
          description: 'the long session to run',
          timeoutMs: 15_000,
        });
        const started = Date.now();
        const removed = await cluster.sf('delete-service-key', name, 'app-4');
        assert.equal(removed.code, 0, removed.stderr);
        const code = await waitFor(() => session.exitCode ?? undefined, {
          description: 'the session of the deleted key to end',
          timeoutMs: 15_000,
          intervalMs: 50,
        });
        assert.notEqual(code, 0, 'psql reports the ended session');
        console.log(`# session of a deleted key ended ${Date.now() - started} ms after delete-service-key started`);
        assert.equal((await as(key4, 'SELECT 1')).ok, false, 'the deleted key cannot log in again');
        assert.equal((await as(key1, 'SELECT count(*) FROM orders')).out, '3', "the app's data stays");
      } finally {
        session.kill('SIGKILL');
      }
    });
  });

  describe('an anonymous TCP client', () => {
    it('cannot exhaust the database through the router: 2000 idle connections', async () => {
      // One attacking address (127.0.0.2); the valid user comes from 127.0.0.1. Connections
      // go out 100 at a time, as a flood faster than the listen backlog would only queue in
      // the kernel. The plan's route limit is 50, of which one address may hold half.
      const perClient = 25;
      const sockets: Socket[] = [];
      let closed = 0;
      let mostHeld = 0;
      const held = () => sockets.length - closed;
      try {
        for (let batch = 0; batch < 20; batch++) {
          for (let i = 0; i < 100; i++) {
            const socket = connect({ host: key1.host, port: key1.port, localAddress: '127.0.0.2' });
            socket.on('error', () => undefined);
            socket.on('close', () => {
              closed++;
            });
            sockets.push(socket);
          }
          await waitFor(() => held() <= perClient || undefined, {
            description: `the router to refuse what is over the limit (batch ${batch + 1}: ${held()} open)`,
            timeoutMs: 10_000,
            intervalMs: 20,
          });
          mostHeld = Math.max(mostHeld, held());
        }
        console.log(`# flood: at most ${mostHeld} of 2000 idle connections held, ${closed} closed`);
        const during = await as(key1, 'SELECT count(*) FROM orders');
        assert.ok(during.ok, `a valid user still gets in during the flood: ${during.err}`);
      } finally {
        for (const socket of sockets) socket.destroy();
      }
      const [container] = await containersOf(instanceId);
      assert.ok(container);
      const state = (await docker.getContainer(container.Id).inspect()).State;
      assert.equal(state.OOMKilled, false);
      assert.equal(state.Running, true);
    });
  });

  describe('the platform holding the OSB credential', () => {
    it('reaches /v2 only: the operator API answers 403 and changes nothing', async () => {
      const auth = `${cluster.osbLogin.username}:${cluster.osbLogin.password}`;
      assert.equal((await osb(cluster, 'GET', '/v2/catalog', { auth })).status, 200);
      const devices = { levels: [{ devices: [{ agent: 'fence_dummy', options: {} }] }] };
      for (const [method, path, body] of [
        ['GET', '/sf/v1/nodes', undefined],
        ['PUT', '/sf/v1/nodes/node-1/fence-devices', devices],
        ['POST', '/sf/v1/nodes/node-1/fence', {}],
        ['POST', '/sf/v1/nodes/node-1/drain', {}],
      ] as const) {
        const res = await osb(cluster, method, path, { auth, body, version: null });
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(typeof res.body.description, 'string');
      }
      const fence = await osb(cluster, 'GET', '/sf/v1/nodes/node-1/fence', { version: null });
      assert.notEqual(fence.body.state, 'fenced');
    });

    it('the viewer reads the operator API and changes nothing', async () => {
      const auth = `${cluster.viewerLogin.username}:${cluster.viewerLogin.password}`;
      assert.equal((await osb(cluster, 'GET', '/sf/v1/nodes', { auth, version: null })).status, 200);
      const res = await osb(cluster, 'POST', '/sf/v1/nodes/node-1/cordon', { auth, body: {}, version: null });
      assert.equal(res.status, 403);
      assert.equal(
        (await osb(cluster, 'PUT', `/v2/service_instances/${randomUUID()}`, { auth, body: {} })).status,
        403,
      );
    });
  });

  describe('an operator', () => {
    it('cannot make a fence device run a shell, nor fence a node that does not exist', async (t) => {
      const marker = join(await tempDirFor(t, 'sf-sec'), 'pwned');
      for (const agent of ['sh', '/bin/sh', '/usr/sbin/../../bin/sh', 'fence_../../bin/sh']) {
        const res = await osb(cluster, 'PUT', '/sf/v1/nodes/node-1/fence-devices', {
          body: { levels: [{ devices: [{ agent, options: { x: `1; touch ${marker}` } }] }] },
          version: null,
        });
        assert.equal(res.status, 400, agent);
      }
      const unknown = await osb(cluster, 'POST', '/sf/v1/nodes/no-such-node/fence', { body: {}, version: null });
      assert.equal(unknown.status, 404);
      const devices = await osb(cluster, 'PUT', '/sf/v1/nodes/no-such-node/fence-devices', {
        body: { levels: [{ devices: [{ agent: 'fence_dummy', options: {} }] }] },
        version: null,
      });
      assert.equal(devices.status, 404);
      await assert.rejects(access(marker));
    });
  });

  describe('smaller holes', () => {
    it('refuses synchronous durability without a standby instead of hanging every commit', async () => {
      const res = await cluster.sf(
        'create-service',
        'postgres',
        'ha-small',
        'sync-alone',
        '-c',
        '{"replicas":1,"durability":"remote-fsync"}',
      );
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /standby|replicas|remote-fsync/);
      const update = await cluster.sf('update-service', name, '-c', '{"durability":"remote-fsync"}');
      assert.notEqual(update.code, 0);
    });

    it('answers hostile URLs and bodies with OSB errors, never a 5xx', async () => {
      const noVersion = await osb(cluster, 'GET', '/%762/catalog', { version: null });
      assert.equal(noVersion.status, 412, 'the version check runs on the normalized path');
      const long = await osb(cluster, 'GET', `/v2/${'a'.repeat(20_000)}`);
      assert.ok(long.status >= 400 && long.status < 500);
      const badEncoding = await fetch(new URL('/v2/service_instances/%zz', cluster.broker.url), {
        headers: {
          authorization: `Basic ${Buffer.from(`${cluster.broker.username}:${cluster.broker.password}`).toString('base64')}`,
          'x-broker-api-version': '2.17',
        },
      });
      assert.equal(badEncoding.status, 400);
      assert.equal(typeof ((await badEncoding.json()) as { description?: string }).description, 'string');
      const nested = `${'{"a":'.repeat(5000)}{}${'}'.repeat(5000)}`;
      const deep = (id: string) =>
        osb(cluster, 'PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
          rawBody: `{"service_id":"x","plan_id":"y","organization_guid":"o","space_guid":"s","context":${nested}}`,
        });
      const id = randomUUID();
      for (const res of [await deep(id), await deep(id)]) assert.equal(res.status, 400);
      const big = await osb(cluster, 'PUT', `/v2/service_instances/${randomUUID()}?accepts_incomplete=true`, {
        body: {
          service_id: 'x',
          plan_id: 'y',
          organization_guid: 'o',
          space_guid: 's',
          context: { pad: 'x'.repeat(900_000) },
        },
      });
      assert.equal(big.status, 413);
    });
  });
});
