import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, type RouteRecord, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import {
  TestClient as Client,
  type EchoServer,
  putRoute,
  startEchoServer,
  stopRouterTest,
  type TestClient,
  tcpRoute,
  tryConnect,
} from './helpers.js';

describe('TCP routes', () => {
  let env: TestEtcd;
  let router: RunningRouter;
  let primaryA: EchoServer;
  let primaryB: EchoServer;
  let routerPort: number;
  const instanceId = 'pg-tcp-1';
  const clients: TestClient[] = [];

  const routeStatus = (id = instanceId): RouteStatus | undefined =>
    router.status().routes.find((route) => route.instanceId === id);
  const open = async (port = routerPort): Promise<TestClient> => {
    const client = await Client.connect(port);
    clients.push(client);
    return client;
  };
  const route = (target: EchoServer, epoch: number): RouteRecord =>
    tcpRoute(instanceId, routerPort, target.port, { epoch });

  before(async () => {
    env = await startTestEtcd();
    primaryA = await startEchoServer('primary-A');
    primaryB = await startEchoServer('primary-B');
    routerPort = await freePort();
    router = await startRouter({ etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root }, { log: silentLogger() });
  });

  after(() => stopRouterTest({ connections: clients, router, backends: [primaryA, primaryB], env }));

  it('accepts on the route port and forwards bytes both ways, half-close included', async () => {
    await putRoute(env, route(primaryA, 10));
    await waitFor(() => routeStatus()?.listening, { description: 'route port bound', timeoutMs: 5000, intervalMs: 20 });

    const client = await open();
    await client.waitForText('primary-A\n');
    client.socket.write('ping 123\n');
    await client.waitForText('ping 123\n');
    assert.equal(routeStatus()?.activeSessions, 1);

    // Half-close: our FIN must reach the primary while its answer still flows back.
    client.socket.end();
    await client.waitForText('primary-A bye\n');
    await client.waitForClose();
    await waitFor(() => routeStatus()?.activeSessions === 0, { description: 'session released', timeoutMs: 2000 });
  });

  it('sends new connections to a new primary and cuts old-epoch sessions within a second', async () => {
    const old = await open();
    await old.waitForText('primary-A\n');

    const switchedAt = Date.now();
    await putRoute(env, route(primaryB, 20));
    await old.waitForClose(1000);
    assert.ok(Date.now() - switchedAt < 1000, 'old session closed within 1 s');
    await waitFor(() => primaryA.sockets.size === 0, {
      description: 'upstream to old primary closed',
      timeoutMs: 1000,
    });

    const fresh = await open();
    await fresh.waitForText('primary-B\n');
    fresh.socket.write('after failover\n');
    await fresh.waitForText('after failover\n');
    const status = routeStatus();
    assert.equal(status?.epoch, 20);
    assert.deepEqual(status?.target, { host: '127.0.0.1', port: primaryB.port });
    assert.equal(status?.lastError, null);
  });

  it('ignores a stale write with a lower epoch', async () => {
    const current = await open();
    await current.waitForText('primary-B\n');

    await putRoute(env, route(primaryA, 15));
    await waitFor(() => /stale/.test(routeStatus()?.lastError ?? ''), {
      description: 'stale write noticed',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(routeStatus()?.epoch, 20);
    assert.equal(current.closed, false, 'the session to the current primary stays open');
    const next = await open();
    await next.waitForText('primary-B\n');
    current.socket.write('still here\n');
    await current.waitForText('still here\n');
  });

  it('refuses an invalid route write without disturbing the others', async () => {
    await env.client.put(env.keys.route('broken-1')).value(JSON.stringify({ instanceId: 'broken-1', protocol: 'udp' }));
    await waitFor(() => router.status().rejected.some((r) => r.instanceId === 'broken-1'), {
      description: 'invalid route rejected',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(routeStatus()?.listening, true);
    await env.client.delete().key(env.keys.route('broken-1'));
    await waitFor(() => router.status().rejected.length === 0, { description: 'rejection retired', timeoutMs: 5000 });
  });

  it('closes the listener and its sessions when the route is deleted', async () => {
    const session = await open();
    await session.waitForText('primary-B\n');
    await env.client.delete().key(env.keys.route(instanceId));
    await waitFor(async () => (await tryConnect(routerPort)) === 'ECONNREFUSED', {
      description: 'route port closed',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    await session.waitForClose(1000);
    assert.equal(routeStatus(), undefined);
  });

  it('drops the client at once when the target is down', async () => {
    const port = await freePort();
    const deadTarget = await freePort();
    await putRoute(env, tcpRoute('dead-1', port, deadTarget));
    await waitFor(() => routeStatus('dead-1')?.listening, {
      description: 'dead route bound',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const client = await open(port);
    await client.waitForClose(2000);
    await waitFor(() => routeStatus('dead-1')?.activeSessions === 0, {
      description: 'session released',
      timeoutMs: 2000,
    });
    await env.client.delete().key(env.keys.route('dead-1'));
  });

  it('holds new clients while the target refuses, then sends them to the new primary with what they wrote', async () => {
    const port = await freePort();
    const deadTarget = await freePort();
    await putRoute(env, tcpRoute('hold-1', port, deadTarget, { epoch: 5 }));
    await waitFor(() => routeStatus('hold-1')?.listening, { description: 'route bound', timeoutMs: 5000 });
    // The first client meets the refusal (nothing told the router the target is down).
    const refused = await open(port);
    await refused.waitForClose(2000);
    const held = await open(port);
    await waitFor(() => routeStatus('hold-1')?.heldClients === 1, { description: 'the next client held' });
    held.socket.write('written while held\n');
    assert.equal(held.closed, false);
    // The route moves (a switchover's promotion): the held client reaches the new primary.
    await putRoute(env, tcpRoute('hold-1', port, primaryA.port, { epoch: 6 }));
    await held.waitForText('primary-A\n');
    await held.waitForText('written while held\n');
    assert.equal(routeStatus('hold-1')?.heldClients, 0);
    held.destroy();
    await env.client.delete().key(env.keys.route('hold-1'));
  });

  it('a held client tries the target as it is after holdWhileRefusedMs (1 s by default)', async () => {
    const port = await freePort();
    const deadTarget = await freePort();
    await putRoute(env, tcpRoute('hold-2', port, deadTarget, { epoch: 5 }));
    await waitFor(() => routeStatus('hold-2')?.listening, { description: 'route bound', timeoutMs: 5000 });
    await (await open(port)).waitForClose(2000);
    const heldAt = Date.now();
    const held = await open(port);
    await waitFor(() => routeStatus('hold-2')?.heldClients === 1, { description: 'the next client held' });
    await held.waitForClose(5000);
    const waited = Date.now() - heldAt;
    assert.ok(waited >= 900 && waited < 4000, `held ${waited} ms before trying the target`);
    assert.equal(routeStatus('hold-2')?.heldClients, 0);
    await env.client.delete().key(env.keys.route('hold-2'));
  });

  it('keeps retrying a port that is in use and reports it in the status', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      await putRoute(env, tcpRoute('busy-1', port, primaryA.port, { epoch: 5 }));
      const failing = await waitFor(
        () => router.status().routes.find((r) => r.instanceId === 'busy-1' && r.lastError),
        {
          description: 'bind failure reported',
          timeoutMs: 5000,
          intervalMs: 20,
        },
      );
      assert.equal(failing.listening, false);
      assert.match(failing.lastError ?? '', /EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    await waitFor(() => routeStatus('busy-1')?.listening, { description: 'port bound after retry', timeoutMs: 10_000 });
    assert.equal(routeStatus('busy-1')?.lastError, null);
    const client = await open(port);
    await client.waitForText('primary-A\n');
    await env.client.delete().key(env.keys.route('busy-1'));
  });
});
