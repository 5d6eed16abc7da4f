import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Catalog } from '@service-foundry/core';
import { docker } from '@service-foundry/test-support/docker';
import { percentile } from '@service-foundry/test-support/percentile';
import { ensureServiceImage } from '../src/index.js';
import { openSession } from './command-session.js';
import { awaitReady, type Cluster, execIn, nodeIp, sfPg, startNode, testNetwork } from './postgres-nodes.js';

test('postgres image: sf-pg session answers role, position and promote as the commands do, and nothing else', {
  timeout: 5 * 60_000,
}, async (t) => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  const recipe = entry?.replication;
  assert.ok(entry && recipe?.session, 'the postgres recipe names a session command');
  await ensureServiceImage(entry, { docker, onProgress: () => {} });
  const id = randomBytes(4).toString('hex');
  const { network, track } = await testNetwork(docker, t, `sf-pgsess-${id}`, id);
  const cluster: Cluster = {
    docker,
    entry,
    network,
    adminPassword: randomBytes(18).toString('base64url'),
    replicationUser: 'sf_replicator',
    replicationPassword: randomBytes(12).toString('base64url'),
    labels: { 'sf.test': 'postgres-session', 'sf.test.run': id },
    track,
  };
  const primary = await startNode(cluster, { name: `sf-pgsess-${id}-p`, role: 'primary' });
  await awaitReady(cluster, primary);
  const standby = await startNode(cluster, {
    name: `sf-pgsess-${id}-s`,
    role: 'replica',
    upstream: { host: await nodeIp(cluster, primary), port: recipe.port },
  });
  await awaitReady(cluster, standby);

  const onPrimary = await openSession(docker, primary.container, recipe.session);
  assert.equal(await onPrimary.greeting(), 'sf-session 1');
  assert.deepEqual(await onPrimary.ask('role'), { code: 0, output: 'primary' });
  const before = BigInt(await sfPg(cluster, primary, 'position'));
  const read = await onPrimary.ask('position');
  assert.equal(read.code, 0);
  assert.match(read.output, /^\d+$/);
  assert.ok(BigInt(read.output) >= before, `position ${read.output} is not behind the exec reading ${before}`);

  // Only the three argument-less commands: nothing else runs, and the session goes on.
  for (const request of ['follow', 'checkpoint', 'role; id', '../role', '']) {
    assert.deepEqual(await onPrimary.ask(request), { code: 2, output: '' }, `request ${JSON.stringify(request)}`);
  }
  assert.match(onPrimary.errors.join(''), /unknown request 'follow' \(one of: role position promote\)/);
  assert.match(onPrimary.errors.join(''), /a request is one command name, got 'role; id'/);
  assert.deepEqual(await onPrimary.ask('role'), { code: 0, output: 'primary' });
  // Readings follow the server (one session of the reader serves them all).
  const first = BigInt((await onPrimary.ask('position')).output);
  const wrote = await execIn(docker, primary.container, [
    'psql',
    '-X',
    '-q',
    '-U',
    'postgres',
    '-c',
    'CREATE TABLE t AS SELECT 1',
  ]);
  assert.equal(wrote.code, 0, wrote.stderr);
  assert.ok(BigInt((await onPrimary.ask('position')).output) > first, 'a write moves the position read');

  // What the session saves: a reading's cost against `docker exec` of the same command.
  const sessionMs: number[] = [];
  const execMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    let started = performance.now();
    assert.equal((await onPrimary.ask('position')).code, 0);
    sessionMs.push(performance.now() - started);
    started = performance.now();
    assert.equal((await execIn(docker, primary.container, recipe.position)).code, 0);
    execMs.push(performance.now() - started);
  }
  t.diagnostic(
    `position reading p50: session ${percentile(sessionMs, 50).toFixed(1)} ms, docker exec ${percentile(execMs, 50).toFixed(1)} ms`,
  );
  await onPrimary.end();

  // Promotion through the session: exit 0 once the standby is a primary.
  const onStandby = await openSession(docker, standby.container, recipe.session);
  assert.equal(await onStandby.greeting(), 'sf-session 1');
  assert.deepEqual(await onStandby.ask('role'), { code: 0, output: 'replica' });
  assert.match((await onStandby.ask('position')).output, /^\d+$/);
  const promoteStarted = performance.now();
  const promoted = await onStandby.ask('promote');
  assert.equal(promoted.code, 0, onStandby.errors.join(''));
  t.diagnostic(`promote through the session: ${(performance.now() - promoteStarted).toFixed(0)} ms`);
  assert.deepEqual(await onStandby.ask('role'), { code: 0, output: 'primary' });
  assert.equal(await sfPg(cluster, standby, 'role'), 'primary');
  // Its reader, opened while it was a standby, reads the primary's position now.
  const promotedAt = BigInt((await onStandby.ask('position')).output);
  assert.equal(BigInt(await sfPg(cluster, standby, 'position')) >= promotedAt, true);
  await onStandby.end();
});
