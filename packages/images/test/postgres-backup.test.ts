import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
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
import {
  awaitReady,
  type Cluster,
  logsOf,
  nodeIp,
  type PgNode,
  psqlInBackground,
  psqlOk,
  sfPg,
  startNode,
} from './postgres-nodes.js';
import { createServiceContainer } from './service-containers.js';

/**
 * The Postgres backup recipe (`sf-pg backup-prepare {{path}}`) driven as the agent drives
 * it: prepare in the running container while a procedure keeps committing, copy the
 * prepared folder into the root of a new volume, start a new container on it. What a
 * user relies on: the restore starts as a primary with every transaction committed before
 * the backup began, and nothing half-committed (a counter table updated in the same
 * transactions still matches).
 */

async function postgresEntry(): Promise<CatalogEntry> {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry?.backup, 'services-catalog/postgres has a backup recipe');
  await ensureServiceImage(entry, { docker, onProgress: () => {} });
  return entry;
}

async function newCluster(entry: CatalogEntry, made: Made): Promise<Cluster & { prefix: string }> {
  const prefix = uniqueId('sf-pgbackup-test');
  const network = await docker.createNetwork({ Name: prefix, Labels: { 'sf.test': 'images' } });
  made.track('network', network.id);
  return {
    prefix,
    docker,
    entry,
    network: prefix,
    adminPassword: randomBytes(18).toString('base64url'),
    replicationUser: 'sf_replicator',
    replicationPassword: randomBytes(18).toString('base64url'),
    labels: { 'sf.test': 'images' },
    track: (kind, id) => made.track(kind, id),
  };
}

/** A container on a volume that already holds the restored copy: the same secret, a new name. */
async function startRestored(cluster: Cluster, name: string, volume: string): Promise<PgNode> {
  const { entry } = cluster;
  const recipe = entry.replication;
  assert.ok(recipe);
  const port = await freePort();
  const env: Record<string, string> = {
    [recipe.env.role]: 'primary',
    [recipe.env.replicationUser]: cluster.replicationUser,
    [recipe.env.replicaName]: name,
  };
  const secrets = { adminPassword: cluster.adminPassword, replicationPassword: cluster.replicationPassword };
  const container = await createServiceContainer(
    docker,
    entry,
    secrets,
    {
      name,
      Labels: cluster.labels,
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        NetworkMode: cluster.network,
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        Mounts: [{ Type: 'volume', Source: volume, Target: entry.runtime.volumePath }],
      },
    },
    env,
  );
  cluster.track('container', container.id);
  await container.start();
  return { name, container, port };
}

const schema = [
  'CREATE TABLE ledger AS SELECT i AS id, md5(i::text) AS body FROM generate_series(1, 50000) i',
  'CREATE TABLE events (id bigint PRIMARY KEY, amount integer NOT NULL)',
  'CREATE TABLE totals (n bigint NOT NULL, s bigint NOT NULL)',
  'INSERT INTO totals VALUES (0, 0)',
  'CREATE TABLE control (stop boolean NOT NULL)',
  'INSERT INTO control VALUES (false)',
  // One transaction per event: the event and the totals move together, or not at all.
  `CREATE PROCEDURE write_events() LANGUAGE plpgsql AS $$
   DECLARE i bigint := 0; deadline timestamptz := clock_timestamp() + interval '45 s';
   BEGIN
     LOOP
       EXIT WHEN (SELECT stop FROM control) OR clock_timestamp() > deadline;
       i := i + 1;
       INSERT INTO events VALUES (i, (i % 97)::integer);
       UPDATE totals SET n = n + 1, s = s + i % 97;
       COMMIT;
     END LOOP;
   END $$`,
];
const ledgerChecksum = "SELECT md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM ledger";
const eventFigures = "SELECT count(*) || ' ' || coalesce(max(id), 0) || ' ' || coalesce(sum(amount), 0) FROM events";
const totalFigures = "SELECT n || ' ' || s FROM totals";

test('postgres backup: prepare under concurrent commits, restored volume starts as a primary with them', {
  timeout: 5 * 60_000,
}, async (t) => {
  const entry = await postgresEntry();
  const made = new Made(docker);
  t.after(() => made.removeAll());
  const cluster = await newCluster(entry, made);
  const testStarted = Date.now();
  const source = await startNode(cluster, { name: `${cluster.prefix}-src`, role: 'primary' });
  await awaitReady(cluster, source);
  await psqlOk(cluster, source, schema);
  const checksum = await psqlOk(cluster, source, [ledgerChecksum]);

  // A copy left over from an interrupted backup is replaced, not merged into.
  const leftover = await execWith(docker, source.container, ['mkdir', '-p', `${backupPath(entry)}/pgdata/stale`]);
  assert.equal(leftover.code, 0, leftover.stderr);

  const writer = psqlInBackground(cluster, source, ['CALL write_events()']);
  t.after(() => writer.child.kill());
  await waitFor(async () => Number(await psqlOk(cluster, source, ['SELECT count(*) FROM events'])) >= 200, {
    description: 'the writer has committed 200 events',
    timeoutMs: 20_000,
  });
  const before = Number(await psqlOk(cluster, source, ['SELECT count(*) FROM events']));
  const prepared = await runPrepare(docker, entry, source.container);
  const after = Number(await psqlOk(cluster, source, ['SELECT count(*) FROM events']));
  await psqlOk(cluster, source, ['UPDATE control SET stop = true']);
  const written = await writer.done;
  assert.equal(written.code, 0, `the writer failed: ${written.stderr}`);
  t.diagnostic(`prepare took ${prepared.ms} ms while ${after - before} events were committed: ${prepared.stdout}`);
  assert.equal(prepared.code, 0, `${prepareCommand(entry).join(' ')} exited ${prepared.code}: ${prepared.stderr}`);
  assert.match(
    prepared.stdout,
    /^backup of \/var\/lib\/postgresql\/data\/pgdata in \/var\/lib\/postgresql\/data\/sf-backup\/pgdata \(start WAL [0-9A-F]+\/[0-9A-F]+\)$/,
  );
  assert.ok(after > before, 'the writer kept committing while prepare ran');

  // Laid out like the volume: pgdata/ only, the server's owner and mode, no signal or pid file.
  const copy = join(await mountpoint(docker, `${cluster.prefix}-src`), entry.backup?.dir ?? '');
  assert.deepEqual(await treeOf(copy), ['. 0700 999', 'pgdata 0700 999']);
  const pgdata = (await treeOf(join(copy, 'pgdata'))).map((line) => line.split(' ')[0]);
  for (const present of ['PG_VERSION', 'backup_label', 'pg_wal', 'postgresql.conf', 'sf-node.conf']) {
    assert.ok(pgdata.includes(present), `the copy has ${present}`);
  }
  for (const absent of ['stale', 'postmaster.pid', 'standby.signal']) {
    assert.ok(!pgdata.includes(absent), `the copy has no ${absent}`);
  }

  const restoreMs = await restoreIntoNewVolume(docker, entry, `${cluster.prefix}-src`, `${cluster.prefix}-dst`, made);
  assert.deepEqual(
    await treeOf(await mountpoint(docker, `${cluster.prefix}-src`)),
    ['. 0700 999', 'pgdata 0700 999'],
    'the agent removed the prepared folder from the source volume',
  );
  const restored = await startRestored(cluster, `${cluster.prefix}-dst`, `${cluster.prefix}-dst`);
  const readyMs = await awaitReady(cluster, restored);
  t.diagnostic(`copied into a new volume in ${restoreMs} ms; the restored server was ready in ${readyMs} ms`);

  assert.equal(await sfPg(cluster, restored, 'role'), 'primary');
  const logs = await logsOf(restored);
  assert.match(logs, /starting the existing cluster as a primary/);
  assert.doesNotMatch(logs, /creating the cluster/);
  assert.equal(await psqlOk(cluster, restored, [ledgerChecksum]), checksum);
  const [count, maxId, sum] = (await psqlOk(cluster, restored, [eventFigures])).split(' ').map(Number);
  assert.ok(
    count !== undefined && count >= before,
    `all ${before} events committed before prepare are there (${count})`,
  );
  assert.equal(maxId, count, 'no event is missing in between');
  assert.equal(await psqlOk(cluster, restored, [totalFigures]), `${count} ${sum}`, 'the totals match the events');
  t.diagnostic(`restored ${count} events: ${before} before prepare, ${after} when it returned`);

  // A primary of its own under this container's name, with the source's roles and passwords.
  assert.equal(await psqlOk(cluster, restored, ['SHOW cluster_name']), restored.name);
  assert.equal(
    await psqlOk(cluster, restored, [
      `SELECT rolreplication FROM pg_roles WHERE rolname = '${cluster.replicationUser}'`,
    ]),
    't',
  );
  await psqlOk(cluster, restored, ['INSERT INTO events VALUES (-1, 0)']);
  t.diagnostic(`whole test ${Date.now() - testStarted} ms`);
});

test('postgres backup: a copy taken on a standby starts as a primary; refusals change nothing', {
  timeout: 5 * 60_000,
}, async (t) => {
  const entry = await postgresEntry();
  const made = new Made(docker);
  t.after(() => made.removeAll());
  const cluster = await newCluster(entry, made);
  const testStarted = Date.now();
  const primary = await startNode(cluster, { name: `${cluster.prefix}-p`, role: 'primary' });
  await awaitReady(cluster, primary);
  await psqlOk(cluster, primary, ['CREATE TABLE notes AS SELECT i AS id FROM generate_series(1, 1000) i']);
  const upstream = { host: await nodeIp(cluster, primary), port: entry.runtime.port };
  const standby = await startNode(cluster, { name: `${cluster.prefix}-s`, role: 'replica', upstream });
  await awaitReady(cluster, standby);
  assert.equal(await sfPg(cluster, standby, 'role'), 'replica');
  await waitFor(async () => (await psqlOk(cluster, standby, ['SELECT count(*) FROM notes'])) === '1000', {
    description: 'the standby has the notes',
    timeoutMs: 15_000,
  });

  const prepared = await runPrepare(docker, entry, standby.container);
  assert.equal(prepared.code, 0, prepared.stderr);
  t.diagnostic(`prepare on the standby took ${prepared.ms} ms`);
  const copy = join(await mountpoint(docker, `${cluster.prefix}-s`), entry.backup?.dir ?? '', 'pgdata');
  const files = (await treeOf(copy)).map((line) => line.split(' ')[0]);
  assert.ok(!files.includes('standby.signal'), 'no standby.signal in the copy');
  assert.ok(
    (await treeOf(copy)).includes('sf-replication.pgpass 0600 999'),
    'the replication password file stays, 0600',
  );
  await restoreIntoNewVolume(docker, entry, `${cluster.prefix}-s`, `${cluster.prefix}-r`, made);
  const restored = await startRestored(cluster, `${cluster.prefix}-r`, `${cluster.prefix}-r`);
  await awaitReady(cluster, restored);
  assert.equal(await sfPg(cluster, restored, 'role'), 'primary');
  assert.equal(await psqlOk(cluster, restored, ['SHOW primary_conninfo']), '');
  assert.equal(await psqlOk(cluster, restored, ['SELECT count(*) FROM notes']), '1000');
  await psqlOk(cluster, restored, ['INSERT INTO notes VALUES (1001)']);

  // Paths outside the volume or over the live cluster: usage error (2), nothing removed.
  for (const bad of [
    'sf-backup',
    '/var/lib/postgresql/data',
    '/var/lib/postgresql/data/pgdata',
    '/var/lib/postgresql/data/pgdata/base',
    '/var/lib/postgresql/data/../x',
    '/tmp/x',
  ]) {
    const refused = await execWith(docker, primary.container, ['sf-pg', 'backup-prepare', bad]);
    assert.equal(refused.code, 2, `backup-prepare ${bad} is refused`);
    assert.match(refused.stderr, /^sf-pg: PATH /);
  }
  assert.equal(await psqlOk(cluster, primary, ['SELECT count(*) FROM notes']), '1000');

  // No server running (the container runs `sleep`): exit 1 with pg_basebackup's reason, no copy left.
  const idle = await docker.createContainer({
    name: `${cluster.prefix}-idle`,
    Image: entry.runtime.image,
    Cmd: ['sleep', '300'],
    Env: Object.entries(entry.runtime.env).map(([key, value]) => `${key}=${value}`),
    Labels: cluster.labels,
    HostConfig: { NetworkMode: cluster.network },
  });
  made.track('container', idle.id);
  await idle.start();
  const failed = await runPrepare(docker, entry, idle);
  assert.equal(failed.code, 1);
  assert.match(
    failed.stderr,
    /^sf-pg backup-prepare: pg_basebackup failed: .*(No such file or directory|could not connect)/,
  );
  const gone = await execWith(docker, idle, ['ls', backupPath(entry)]);
  assert.notEqual(gone.code, 0, 'the failed prepare removed its folder');
  t.diagnostic(`whole test ${Date.now() - testStarted} ms`);
});
