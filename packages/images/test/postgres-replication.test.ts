import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Catalog, type CatalogEntry, waitFor } from '@service-foundry/core';
import { docker } from '@service-foundry/test-support/docker';
import { ensureServiceImage, formatSize } from '../src/index.js';
import {
  awaitReady,
  type Cluster,
  execIn,
  fillCommand,
  logsOf,
  nodeIp,
  type PgNode,
  psql,
  psqlInBackground,
  psqlOk,
  sfPg,
  startNode,
  testNetwork,
} from './postgres-nodes.js';

/**
 * Native streaming replication of the catalog's Postgres image, driven through the
 * recipe of service.json exactly as the agent runs it: a primary and two hot standbys on
 * one Docker network, remote-fsync durability (a write waits for a standby's flush),
 * and a failover by promote + follow after the primary is killed.
 */

async function postgresEntry(): Promise<CatalogEntry> {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry, 'services-catalog/postgres is in the catalog');
  return entry;
}

/** The promise's value if it settles within `ms`, else undefined (the timer never outlives it). */
async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const timer = new AbortController();
  try {
    return await Promise.race([promise, delay(ms, undefined, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

/** Positions of a standby, through the recipe's command. */
async function position(cluster: Cluster, node: PgNode): Promise<bigint> {
  const printed = await sfPg(cluster, node, ...(cluster.entry.replication?.position.slice(1) ?? []));
  assert.match(printed, /^\d+$/, `${node.name} printed a decimal position`);
  return BigInt(printed);
}

async function role(cluster: Cluster, node: PgNode): Promise<string> {
  return sfPg(cluster, node, 'role');
}

async function awaitCaughtUp(cluster: Cluster, target: bigint, standbys: PgNode[]): Promise<void> {
  for (const node of standbys) {
    await waitFor(async () => (await position(cluster, node)) >= target, {
      description: `${node.name} reaches position ${target}`,
      timeoutMs: 15_000,
    });
  }
}

async function streamingStandbys(cluster: Cluster, primary: PgNode): Promise<string[]> {
  const rows = await psqlOk(cluster, primary, [
    "SELECT application_name || ':' || sync_state FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1",
  ]);
  return rows === '' ? [] : rows.split('\n');
}

test('postgres image: streaming replication, remote-fsync blocks without a standby, promote and follow', {
  timeout: 10 * 60_000,
}, async (t) => {
  const entry = await postgresEntry();
  const recipe = entry.replication;
  assert.ok(recipe);
  const image = await ensureServiceImage(entry, { docker, onProgress: () => {} });
  t.diagnostic(`image ${image.tag}: ${formatSize(image.sizeBytes)}, built=${image.built}, ${image.seconds} s`);

  const id = randomBytes(4).toString('hex');
  const { network, track } = await testNetwork(docker, t, `sf-pgrepl-${id}`, id);
  const cluster: Cluster = {
    docker,
    entry,
    network,
    adminPassword: randomBytes(18).toString('base64url'),
    replicationUser: 'sf_replicator',
    // A colon and a backslash: both need escaping in a libpq password file.
    replicationPassword: `${randomBytes(12).toString('base64url')}:\\x`,
    labels: { 'sf.test': 'postgres-replication', 'sf.test.run': id },
    track,
  };
  const names = { p: `sf-pgrepl-${id}-p`, a: `sf-pgrepl-${id}-a`, b: `sf-pgrepl-${id}-b` };

  // Standby B comes first, against the primary's name on the network: nothing answers
  // there yet, so it must wait and clone once the primary appears.
  const b = await startNode(cluster, {
    name: names.b,
    role: 'replica',
    upstream: { host: names.p, port: recipe.port },
  });
  await waitFor(async () => /waiting for upstream/.test(await logsOf(b)), {
    description: 'standby B reports that it waits for its upstream',
  });
  assert.equal((await b.container.inspect()).State.Running, true);

  const primaryStarted = Date.now();
  const p = await startNode(cluster, { name: names.p, role: 'primary' });
  await awaitReady(cluster, p);
  t.diagnostic(`primary ready (initdb + roles) in ${Date.now() - primaryStarted} ms`);
  const pIp = await nodeIp(cluster, p);

  const cloneStarted = Date.now();
  const a = await startNode(cluster, { name: names.a, role: 'replica', upstream: { host: pIp, port: recipe.port } });
  await awaitReady(cluster, a);
  t.diagnostic(`standby A cloned (pg_basebackup) and ready in ${Date.now() - cloneStarted} ms`);
  await awaitReady(cluster, b);
  t.diagnostic(
    `standby B (waiting before the primary existed) ready ${Date.now() - primaryStarted} ms after the primary started`,
  );
  assert.match(await logsOf(b), /cloned .* \(\d+ attempts\); starting as a hot standby/);

  assert.equal(await role(cluster, p), 'primary');
  assert.equal(await role(cluster, a), 'replica');
  assert.equal(await role(cluster, b), 'replica');

  const configure = fillCommand(recipe.configure, { durability: 'remote-fsync', localIo: 'fsync' });
  for (const node of [p, a, b]) {
    assert.equal(
      await sfPg(cluster, node, ...configure.slice(1)),
      "synchronous_standby_names='ANY 1 (*)' synchronous_commit=on fsync=on full_page_writes=on commit_delay=0",
    );
  }
  // The reloads found nothing in the configuration files at odds with the command line.
  for (const node of [p, a, b])
    assert.doesNotMatch(await logsOf(node), /cannot be changed without restarting|contains errors/);
  const badUsage = await execIn(docker, p.container, ['sf-pg', 'configure', 'remote-fsync', 'sometimes']);
  assert.equal(badUsage.code, 2);
  assert.match(badUsage.stderr, /LOCAL_IO 'sometimes' is not one of fsync, batched, unsafe/);

  // Writes on the primary reach both standbys; the standbys serve reads and refuse writes.
  const before = await position(cluster, p);
  await psqlOk(cluster, p, [
    'CREATE TABLE public.writes (id integer PRIMARY KEY, note text NOT NULL)',
    "INSERT INTO public.writes SELECT n, 'row ' || n FROM generate_series(1, 100) AS n",
  ]);
  const after = await position(cluster, p);
  assert.ok(after > before, `the primary's position moved: ${before} → ${after}`);
  await awaitCaughtUp(cluster, after, [a, b]);
  for (const standby of [a, b]) {
    assert.equal(await psqlOk(cluster, standby, ['SELECT count(*), max(note) FROM writes']), '100|row 99');
    const refused = await psql(cluster, standby, ["INSERT INTO writes VALUES (1000, 'on a standby')"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot execute INSERT in a read-only transaction/);
  }
  await waitFor(
    async () => {
      const rows = await streamingStandbys(cluster, p);
      return rows.length === 2 && rows.every((row) => /:(quorum|sync)$/.test(row)) ? rows : false;
    },
    { description: 'two synchronous standbys in pg_stat_replication' },
  );
  assert.deepEqual(await streamingStandbys(cluster, p), [`${names.a}:quorum`, `${names.b}:quorum`]);

  // ANY 1: one standby is enough to acknowledge.
  await b.container.stop({ t: 30 });
  await psqlOk(cluster, p, ["INSERT INTO writes VALUES (101, 'with standby A only')"], 10_000);

  // No standby: a remote-fsync commit must wait, and nobody sees the row meanwhile.
  await a.container.stop({ t: 30 });
  const blocked = psqlInBackground(cluster, p, ["INSERT INTO writes VALUES (102, 'waits for a standby')"]);
  t.after(() => blocked.child.kill('SIGKILL'));
  await waitFor(
    async () =>
      (await psqlOk(cluster, p, ["SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"])) === '1',
    { description: 'the write waits for synchronous replication' },
  );
  assert.equal(await settledWithin(blocked.done, 2000), undefined, 'the write is not acknowledged without a standby');
  assert.equal(await psqlOk(cluster, p, ['SELECT count(*) FROM writes WHERE id = 102']), '0');

  // A standby back: the waiting write is acknowledged and replicated.
  await a.container.start();
  const unblocked = await settledWithin(blocked.done, 30_000);
  assert.ok(unblocked, 'the write completes once a standby is back');
  assert.equal(unblocked.code, 0, unblocked.stderr);
  assert.match(await logsOf(a), /starting the existing cluster as a standby/);
  await b.container.start();
  await awaitReady(cluster, a);
  await awaitReady(cluster, b);
  assert.equal(await role(cluster, a), 'replica');
  await waitFor(async () => (await streamingStandbys(cluster, p)).length === 2, {
    description: 'both standbys stream again',
  });
  const last = await position(cluster, p);
  await awaitCaughtUp(cluster, last, [a, b]);
  assert.equal(await psqlOk(cluster, b, ['SELECT note FROM writes WHERE id = 102']), 'waits for a standby');

  // Failover: the primary dies, A is promoted and B re-pointed at it.
  await p.container.kill();
  const promoteStarted = Date.now();
  assert.match(await sfPg(cluster, a, ...recipe.promote.slice(1)), /^primary \(promoted; timeline 2\)$/);
  t.diagnostic(`promote took ${Date.now() - promoteStarted} ms`);
  assert.match(await sfPg(cluster, a, 'promote'), /^primary \(already; timeline 2\)$/);
  assert.equal(await role(cluster, a), 'primary');
  const aIp = await nodeIp(cluster, a);
  const follow = fillCommand(recipe.follow, { host: aIp, port: String(recipe.port) });
  const followStarted = Date.now();
  assert.equal(await sfPg(cluster, b, ...follow.slice(1)), `following ${aIp}:${recipe.port} as ${names.b}`);
  const refused = await execIn(docker, a.container, follow);
  assert.equal(refused.code, 1, 'a primary refuses to follow');
  assert.match(refused.stderr, /this server is a primary/);

  // A keeps remote-fsync from `configure`: this commit needs B streaming from A.
  await psqlOk(cluster, a, ["INSERT INTO writes VALUES (103, 'after failover')"], 30_000);
  t.diagnostic(`first acknowledged write on the new primary ${Date.now() - followStarted} ms after follow`);
  await waitFor(
    async () => (await psqlOk(cluster, b, ['SELECT note FROM writes WHERE id = 103'])) === 'after failover',
    { description: 'B reads the write made on the promoted A' },
  );
  assert.deepEqual(await streamingStandbys(cluster, a), [`${names.b}:quorum`]);
  assert.equal(await role(cluster, b), 'replica');
  assert.equal(await psqlOk(cluster, b, ['SELECT count(*) FROM writes']), '103');
  await awaitCaughtUp(cluster, await position(cluster, a), [b]);

  // The rest of the mapping, on the standby (which keeps it for when it is promoted).
  assert.equal(
    await sfPg(cluster, b, 'configure', 'async', 'batched'),
    "synchronous_standby_names='' synchronous_commit=off fsync=on full_page_writes=on commit_delay=1000",
  );
  assert.equal(
    await sfPg(cluster, b, 'configure', 'received', 'unsafe'),
    "synchronous_standby_names='ANY 1 (*)' synchronous_commit=remote_write fsync=off full_page_writes=off commit_delay=0",
  );
  assert.equal(
    await sfPg(cluster, b, 'configure', 'async', 'fsync'),
    "synchronous_standby_names='' synchronous_commit=local fsync=on full_page_writes=on commit_delay=0",
  );
  assert.equal(await role(cluster, b), 'replica');
});
