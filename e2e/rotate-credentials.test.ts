import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type Etcd3,
  type InstanceSecret,
  Keyspace,
  readSealed,
  SecretBox,
  secretCodec,
  waitFor,
} from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { perRouterUris } from '@service-foundry/test-support/cluster-ca';
import { psql } from '@service-foundry/test-support/psql';
import { type RedisCredentials, redisCli } from '@service-foundry/test-support/redis-cli';
import { longestGapMs, lostWrites, Writer } from '@service-foundry/test-support/writer';

const keys = new Keyspace('/sf');

/**
 * `sf rotate-credentials` on real three-replica Postgres (remote-fsync) and Redis
 * instances: the admin and replication passwords change while an app keeps writing
 * through the router with its own key, the old passwords are refused afterwards, the
 * replicas stream again with the new replication password after their links are cut, and
 * the broker makes new keys with the new admin password.
 */
describe('sf rotate-credentials: an instance’s own passwords replaced without downtime', () => {
  let cluster: TestCluster;
  let etcd: Etcd3;
  let box: SecretBox;

  const idOf = async (name: string): Promise<string> => {
    const res = await cluster.sf('service', name, '--json');
    assert.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { id: string }).id;
  };
  const secretOf = async (id: string): Promise<InstanceSecret> => {
    const read = await readSealed(etcd, box, secretCodec, keys.secret(id));
    assert.ok(read, 'the instance secret');
    return read.value;
  };
  const newKey = async (name: string, key: string): Promise<Record<string, unknown>> => {
    const res = await cluster.sf('create-service-key', name, key, '--json');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    return JSON.parse(res.stdout) as Record<string, unknown>;
  };
  const rotate = async (name: string): Promise<string> => {
    const startedAt = Date.now();
    const res = await cluster.sf('rotate-credentials', name);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /OK: .* passwords are new \(generation 1\); the old ones are refused/);
    console.log(`# sf rotate-credentials ${name}: ${((Date.now() - startedAt) / 1000).toFixed(1)} s to the end`);
    return res.stdout;
  };

  /** A backup taken now (before the rotation); its id. */
  const backupOf = async (name: string): Promise<string> => {
    const res = await cluster.sf('backup', name);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const listed = await cluster.sf('backups', name, '--json');
    const id = (JSON.parse(listed.stdout) as Array<{ id: string }>)[0]?.id;
    assert.ok(id, 'the backup is listed');
    return id;
  };
  /** Restores `backup` of `name` as a new instance `as`; the new instance's id. */
  const restoreAs = async (name: string, backup: string, as: string): Promise<string> => {
    const res = await cluster.sf('restore', name, backup, '--as', as);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    return idOf(as);
  };

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
    etcd = cluster.etcdAsRoot();
    box = await SecretBox.fromKeyFile(join(cluster.home, 'pki', 'secrets.key'));
  });
  after(async () => {
    etcd?.close();
    await cluster?.destroy();
  });

  it('Postgres: writes go on, the old admin and replication passwords are refused, replicas stream again', async () => {
    const created = await cluster.sf(
      'create-service',
      'postgres',
      'ha-small',
      'pg',
      '-c',
      JSON.stringify({ durability: 'remote-fsync' }),
    );
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const uri = (await newKey('pg', 'app')).uri as string;
    const id = await idOf('pg');
    const old = await secretOf(id);
    /** The app's URI with another login: the same router, database and TLS settings. */
    const as = (user: string, password: string, params: Record<string, string> = {}) => {
      const url = new URL(perRouterUris(uri)[0] as string);
      url.username = user;
      url.password = password;
      for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
      return url.toString();
    };
    assert.equal((await psql(as('postgres', old.adminPassword), 'SELECT 1')).out, '1', 'admin logs in before');
    const backup = await backupOf('pg');

    await Writer.prepare(uri);
    const writer = new Writer(uri);
    writer.start();
    const startedAt = Date.now();
    let output = '';
    try {
      await waitFor(() => writer.acked.length >= 50, { description: '50 acknowledged writes', timeoutMs: 90_000 });
      output = await rotate('pg');
      const doneAt = Date.now();
      await waitFor(() => writer.firstAckAfter(doneAt), {
        description: 'writes after the rotation',
        timeoutMs: 60_000,
      });
    } finally {
      await writer.stop();
    }
    const gapMs = longestGapMs(writer.acked, startedAt);
    console.log(
      `# postgres rotation (3 replicas, remote-fsync): longest write gap ${(gapMs / 1000).toFixed(2)} s, ${writer.acked.length} writes`,
    );
    assert.deepEqual(await lostWrites(uri, writer.acked), [], 'no acknowledged write lost');
    assert.ok(gapMs < 5000, `the app's writes never paused for long (longest ${gapMs} ms)`);
    assert.match(output, /generation 1, new-only/, 'every replica reports the last step');

    const now = await secretOf(id);
    assert.equal(now.generation, 1);
    assert.equal(now.previous, undefined, 'the previous passwords are gone from the record');
    assert.notEqual(now.adminPassword, old.adminPassword);
    assert.equal((await psql(as('postgres', now.adminPassword), 'SELECT 1')).out, '1', 'the new admin password');
    const refused = await psql(as('postgres', old.adminPassword), 'SELECT 1');
    assert.equal(refused.ok, false);
    assert.match(refused.err, /password authentication failed/);
    const replication = (password: string) =>
      psql(as(old.replicationUser ?? 'sf_replicator', password, { replication: 'true' }), 'IDENTIFY_SYSTEM');
    assert.equal((await replication(now.replicationPassword ?? '')).ok, true, 'the new replication password');
    assert.match((await replication(old.replicationPassword ?? '')).err, /password authentication failed/);

    // Cut every replica's stream: they come back only with the new replication password.
    const admin = as('postgres', now.adminPassword);
    const streaming = async () =>
      (await psql(admin, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")).out;
    assert.equal(await streaming(), '2');
    await psql(admin, 'SELECT pg_terminate_backend(pid) FROM pg_stat_replication');
    await waitFor(async () => (await streaming()) === '2', {
      description: 'both replicas streaming again after their links were cut',
      timeoutMs: 60_000,
    });

    const after = (await newKey('pg', 'after')).uri as string;
    assert.equal((await psql(perRouterUris(after)[0] as string, 'SELECT 1')).out, '1', 'a key made afterwards works');
    const events = (await cluster.sf('events', '--json', '--limit', '400')).stdout;
    assert.match(events, /credentials-rotation-complete/);

    // A backup from before the rotation, restored as a new instance: its servers start with
    // the old role passwords and take on the current ones (its replicas clone with them).
    const restoredId = await restoreAs('pg', backup, 'pg-restored');
    assert.equal((await secretOf(restoredId)).adminPassword, now.adminPassword, 'the restore has the current secret');
    const copy = (await newKey('pg-restored', 'app')).uri as string;
    assert.equal((await psql(perRouterUris(copy)[0] as string, 'SELECT 1')).out, '1', 'a key on the restored copy');
  });

  it('Redis: the app keeps its key, the old admin and replication passwords get WRONGPASS, replicas relink', async () => {
    const created = await cluster.sf('create-service', 'redis', 'ha-small', 'rd');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const app = (await newKey('rd', 'app')) as unknown as RedisCredentials;
    const id = await idOf('rd');
    const old = await secretOf(id);
    const as = (username: string, password: string): RedisCredentials => ({ ...app, username, password });
    assert.equal(await redisCli(as(old.adminUser, old.adminPassword), 'PING'), 'PONG');
    assert.equal(await redisCli(app, 'SET', 'before-backup', 'kept'), 'OK');
    const backup = await backupOf('rd');

    const acked: Array<{ i: number; at: number }> = [];
    let stop = false;
    const writing = (async () => {
      for (let i = 0; !stop; i++) {
        if ((await redisCli(app, 'SET', `r${i}`, String(i)).catch(() => '')) === 'OK')
          acked.push({ i, at: Date.now() });
      }
    })();
    const startedAt = Date.now();
    try {
      await waitFor(() => acked.length >= 20, { description: '20 acknowledged SETs', timeoutMs: 60_000 });
      await rotate('rd');
      const done = acked.length;
      await waitFor(() => acked.length >= done + 10, { description: 'SETs after the rotation', timeoutMs: 60_000 });
    } finally {
      stop = true;
      await writing;
    }
    const gapMs = longestGapMs(acked, startedAt);
    console.log(`# redis rotation (3 replicas): longest SET gap ${(gapMs / 1000).toFixed(2)} s, ${acked.length} SETs`);
    assert.ok(gapMs < 5000, `the app's SETs never paused for long (longest ${gapMs} ms)`);

    const now = await secretOf(id);
    assert.equal(await redisCli(as(now.adminUser, now.adminPassword), 'PING'), 'PONG', 'the new admin password');
    assert.match(await redisCli(as(old.adminUser, old.adminPassword), 'PING'), /WRONGPASS/);
    const replicationUser = old.replicationUser ?? assert.fail('a replication login');
    assert.equal(await redisCli(as(replicationUser, now.replicationPassword ?? ''), 'PING'), 'PONG');
    assert.match(await redisCli(as(replicationUser, old.replicationPassword ?? ''), 'PING'), /WRONGPASS/);

    // Cut the replicas' links: they log in again with the new replication password.
    const admin = as(now.adminUser, now.adminPassword);
    const linked = async () => /connected_slaves:2/.test(await redisCli(admin, 'INFO', 'replication'));
    await waitFor(linked, { description: 'two replicas linked', timeoutMs: 30_000 });
    await redisCli(admin, 'CLIENT', 'KILL', 'TYPE', 'replica');
    await waitFor(linked, { description: 'both replicas linked again after their links were cut', timeoutMs: 60_000 });

    const later = (await newKey('rd', 'after')) as unknown as RedisCredentials;
    assert.equal(await redisCli(later, 'SET', 'after', '1'), 'OK', 'a key made afterwards works');
    const missing = [];
    for (const { i } of acked) if ((await redisCli(app, 'GET', `r${i}`)) !== String(i)) missing.push(i);
    assert.deepEqual(missing, [], `acknowledged SETs lost: ${missing.length} of ${acked.length}`);

    // A backup from before the rotation, restored as a new instance: its servers start with
    // the current passwords of the platform's users, and the app's key from the backup works.
    const restoredId = await restoreAs('rd', backup, 'rd-restored');
    const restored = await secretOf(restoredId);
    assert.equal(restored.adminPassword, now.adminPassword, 'the restore has the current secret');
    const copy = (await newKey('rd-restored', 'app')) as unknown as RedisCredentials;
    assert.equal(await redisCli(copy, 'GET', 'before-backup'), 'kept', 'the backup’s data, through a new key');
    assert.equal(await redisCli({ ...copy, username: now.adminUser, password: now.adminPassword }, 'PING'), 'PONG');
  });
});
