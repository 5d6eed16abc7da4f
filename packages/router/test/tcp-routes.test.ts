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

/**
 * How the router treats route records of TCP routes: stale and invalid writes, deletion, a
 * port it cannot bind. What the HAProxy processes do with the sessions (bytes, epoch cuts,
 * the hold, limits) is in haproxy-routes.test.ts.
 */
describe('TCP route records', () => {
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

  it('ignores a stale write with a lower epoch', async () => {
    await putRoute(env, route(primaryB, 20));
    await waitFor(() => routeStatus()?.listening && routeStatus()?.epoch === 20, {
      description: 'route at epoch 20',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
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
      assert.match(failing.lastError ?? '', /Address already in use/);
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
