import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { PrefixMirror, type ReplicaStatus, statusCodec } from '@service-foundry/core';
import { silentLogger } from '@service-foundry/test-support';
import { containerState, volumeExists } from '@service-foundry/test-support/docker';
import { networkAddressOf, replicationSuite, testSecret } from './replication-harness.js';
import { shellIn } from './replication-helpers.js';

/** Rules 1–5 (src/replica-decisions.ts) with real containers, against the busybox recipe (replication-helpers.ts). */
describe('replicated services: roles, epochs, follow and io', () => {
  const suite = replicationSuite();
  const { start } = suite;

  test('rule 1: without a role nothing is created; rule 3: a replica without an upstream waits', async (t) => {
    const h = await start(t);
    await h.assign(0);
    const waiting = await h.status(0, 'creating, waiting for a role', (s) => s.state === 'creating');
    assert.equal(waiting.message, 'waiting for the controller to choose a role');
    await h.assign(1, { role: 'replica' });
    const noUpstream = await h.status(1, 'creating, waiting for an upstream', (s) => s.state === 'creating');
    assert.match(noUpstream.message, /upstream/);
    for (const ordinal of [0, 1]) {
      assert.equal(await containerState(h.container(ordinal)), undefined, `no container for ${ordinal}`);
      assert.equal(await volumeExists(h.container(ordinal)), false, `no volume for ${ordinal}`);
    }
  });

  test('rules 2 and 5: a bootstrap primary starts with its env and reports peer, role and position', async (t) => {
    const h = await start(t);
    await h.assign(0, { role: 'primary', epoch: 0 });
    const running = await h.status(
      0,
      'running bootstrap primary with peer and position',
      (s) => s.state === 'running' && s.role === 'primary' && s.peer !== undefined && s.position !== undefined,
    );
    assert.equal(running.epoch, 0);
    assert.equal(running.generation, 0);
    assert.equal(running.message, 'ready');
    const info = await containerState(h.container(0));
    assert.ok(info);
    const env = info.Config.Env;
    for (const expected of [
      'SF_ROLE=primary',
      'SF_REPLICA_NAME=r0',
      `SF_REPL_USER=${testSecret.replicationUser}`,
      'SF_REPL_PASSWORD_FILE=/run/sf-secrets/replication-password',
      'SF_ADMIN_PASSWORD_FILE=/run/sf-secrets/admin-password',
      'SF_MAX_CONNECTIONS=20',
    ]) {
      assert.ok(env.includes(expected), `env has ${expected.split('=')[0]}`);
    }
    // The passwords are files in the container, in no variable.
    const passwords = [testSecret.adminPassword, testSecret.replicationPassword ?? '-'];
    const shown = JSON.stringify([info.Config, info.HostConfig]);
    assert.ok(
      passwords.every((password) => !shown.includes(password)),
      'docker inspect shows no password',
    );
    const files = 'cat /run/sf-secrets/admin-password; echo; cat /run/sf-secrets/replication-password';
    assert.equal(await shellIn(h.container(0), files), passwords.join('\n'));
    assert.ok(!env.some((e) => e.startsWith('SF_UPSTREAM_')), 'a primary gets no upstream');
    assert.equal(info.Config.Labels['sf.role'], 'primary');
    assert.equal(info.Config.Labels['sf.generation'], '0');
    assert.deepEqual(await h.actions(0), ['init', 'start primary']);

    // The peer is the container's address on its network, reachable from other containers (and the host).
    const address = networkAddressOf(info);
    assert.deepEqual(running.peer, { host: address, port: 8080 });
    assert.equal((await fetch(`http://${address}:8080/`)).status, 200);

    // Positions are decimal strings, larger than 2^53 too.
    await shellIn(h.container(0), 'echo 12345678901234567890 > /data/position');
    const moved = await h.status(0, 'new position reported', (s) => s.position === '12345678901234567890');
    assert.ok(moved.positionAt && Date.now() - Date.parse(moved.positionAt) < 5000, 'positionAt is recent');

    // Unchanged values are not rewritten on every probe (every 200 ms here): at most once per 5 s.
    const writes: ReplicaStatus[] = [];
    const mirror = new PrefixMirror(suite.client, statusCodec, h.keys.status(h.instanceId, 0), silentLogger());
    mirror.on('change', (changes) => {
      for (const change of changes) if (change.current) writes.push(change.current.value);
    });
    await mirror.start();
    t.after(() => mirror.close());
    await delay(2000); // a measurement window, not a synchronisation
    assert.ok(writes.length <= 1, `at most one status write in 2 s without changes, saw ${writes.length}`);
  });

  test('rule 2: a primary is started only while the primary key names it at its epoch', async (t) => {
    const h = await start(t);
    const epoch = await h.putPrimary(0);
    // Bootstrap asked while a primary key exists: stale.
    await h.assign(0, { role: 'primary', epoch: 0 });
    const bootstrap = await h.status(0, 'stale bootstrap refused', (s) => /stale epoch/.test(s.message));
    assert.equal(bootstrap.state, 'creating');
    assert.match(bootstrap.message, /^not starting as primary: stale epoch: .*already exists at epoch/);
    // An epoch the key does not have: stale.
    await h.assign(0, { role: 'primary', epoch: epoch + 1000 });
    await h.status(0, 'wrong epoch refused', (s) => s.message.includes(`is at epoch ${epoch}`));
    // The key at this epoch names another replica: stale.
    await h.assign(1, { role: 'primary', epoch });
    const other = await h.status(1, 'other ordinal refused', (s) => /stale epoch/.test(s.message));
    assert.match(other.message, /names replica 0 on node/);
    assert.equal(await containerState(h.container(0)), undefined, 'no container while stale');
    assert.equal(await containerState(h.container(1)), undefined, 'no container for the other ordinal');

    await h.assign(0, { role: 'primary', epoch });
    const running = await h.status(0, 'primary at the right epoch', (s) => s.state === 'running');
    assert.equal(running.role, 'primary');
    assert.equal(running.epoch, epoch);

    // Rule 4b: a running primary moved to an epoch the key does not have is reported, not stopped.
    await h.assign(0, { role: 'primary', epoch: epoch + 1 });
    const stale = await h.status(0, 'stale epoch reported', (s) => /stale epoch/.test(s.message));
    assert.equal(stale.state, 'running');
    assert.equal(stale.epoch, epoch, 'the status keeps the epoch that was checked');
    assert.equal((await containerState(h.container(0)))?.State.Running, true);
  });

  test("rule 5 with peerAddress 'node': the peer is the node address and the published port", async (t) => {
    const h = await suite.start(t, {
      peerAddress: 'node',
      address: '127.0.0.1',
    });
    await h.assign(0, { role: 'primary', epoch: 0 });
    const running = await h.status(0, 'running with a peer', (s) => s.state === 'running' && s.peer !== undefined);
    const info = await containerState(h.container(0));
    const published = Number(info?.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
    assert.deepEqual(running.peer, { host: '127.0.0.1', port: published });
    assert.equal(running.port, published, 'here the replication port is the service port');
    assert.equal((await fetch(`http://127.0.0.1:${published}/`)).status, 200);
  });

  test('rules 3, 4c and 4d: a replica clones from its upstream, follows a new one and applies io', async (t) => {
    const h = await start(t);
    const upstream = { host: '10.1.2.3', port: 5432 };
    await h.assign(1, { role: 'replica', epoch: 7, upstream });
    const running = await h.status(1, 'running replica', (s) => s.state === 'running' && s.role === 'replica');
    assert.equal(running.epoch, 7);
    const info = await containerState(h.container(1));
    assert.ok(info);
    for (const expected of [
      'SF_ROLE=replica',
      'SF_UPSTREAM_HOST=10.1.2.3',
      'SF_UPSTREAM_PORT=5432',
      'SF_REPLICA_NAME=r1',
      `SF_REPL_USER=${testSecret.replicationUser}`,
      'SF_REPL_PASSWORD_FILE=/run/sf-secrets/replication-password',
    ]) {
      assert.ok(info.Config.Env.includes(expected), `env has ${expected}`);
    }
    assert.deepEqual(await h.actions(1), ['clone 10.1.2.3 5432', 'start replica']);

    await h.assign(1, { role: 'replica', epoch: 9, upstream: { host: '10.1.2.4', port: 5433 } });
    await h.status(1, 'epoch 9 after follow', (s) => s.epoch === 9 && s.message === 'ready');
    assert.deepEqual((await h.actions(1)).slice(2), ['follow 10.1.2.4 5433']);

    const io = { durability: 'remote-fsync', localIo: 'fsync' } as const;
    await h.assign(1, { role: 'replica', epoch: 9, upstream: { host: '10.1.2.4', port: 5433 }, io });
    const configured = await h.status(1, 'io applied', (s) => s.io?.durability === 'remote-fsync');
    assert.deepEqual(configured.io, io);
    const relaxed = { durability: 'async', localIo: 'batched' } as const;
    await h.assign(1, { role: 'replica', epoch: 9, upstream: { host: '10.1.2.4', port: 5433 }, io: relaxed });
    await h.status(1, 'io changed', (s) => s.io?.durability === 'async' && s.io.localIo === 'batched');
    assert.deepEqual((await h.actions(1)).slice(2), [
      'follow 10.1.2.4 5433',
      'configure remote-fsync fsync',
      'configure async batched',
    ]);
    assert.equal((await containerState(h.container(1)))?.Id, info.Id, 'changed in place, not rebuilt');
  });

  test('rules 4a and 4f: promotion only at the primary key epoch; a failed promote says why and is retried', async (t) => {
    const h = await start(t);
    const upstream = { host: '10.1.2.3', port: 5432 };
    await h.assign(1, { role: 'replica', epoch: 3, upstream });
    await h.status(1, 'running replica', (s) => s.state === 'running' && s.role === 'replica');
    const epoch = await h.putPrimary(1);

    await h.assign(1, { role: 'primary', epoch: epoch + 5, upstream });
    const stale = await h.status(1, 'promotion refused', (s) => /not promoted: stale epoch/.test(s.message));
    assert.equal(stale.role, 'replica');
    assert.equal(stale.state, 'running', 'still running as a replica');
    assert.equal((await shellIn(h.container(1), '/bin/sf-test role')).trim(), 'replica');
    assert.ok(!(await h.actions(1)).includes('promote'), 'promote never ran');

    await shellIn(h.container(1), 'echo injected failure > /data/fail-promote');
    await h.assign(1, { role: 'primary', epoch, upstream });
    const failed = await h.status(1, 'promote failure reported', (s) => /promote failed/.test(s.message));
    assert.match(failed.message, /exited with code 3: promote refused: injected failure/);
    assert.ok(!failed.message.includes(testSecret.replicationPassword ?? '-'), 'no secret in the message');
    assert.equal(failed.role, 'replica');

    await shellIn(h.container(1), 'rm /data/fail-promote');
    const promoted = await h.status(1, 'promoted on retry', (s) => s.role === 'primary' && s.message === 'ready');
    assert.equal(promoted.epoch, epoch);
    const events = await h.events('replica-promoted');
    assert.match(events[0]?.message ?? '', new RegExp(`promoted to primary at epoch ${epoch}`));
  });
});
