import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import { type EchoServer, putRoute, startEchoServer, stopRouterTest, TestClient, tcpRoute } from './helpers.js';

// Long enough that a busy machine stalling the event loop cannot pass for idling.
const idleTimeoutMs = 800;
/** Traffic every 100 ms for two timeouts: the busy sessions must still be open after it. */
const busyMessages = (2 * idleTimeoutMs) / 100;

/**
 * A stand-in service that never answers what it reads; with `ticks`, it talks on its own
 * (`tick\n` every 100 ms to each connection). Traffic in one direction only, either way.
 */
async function startOneWay(ticks: boolean): Promise<{ port: number; received(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let received = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      received += chunk.length;
    });
    const timer = ticks ? setInterval(() => socket.write('tick\n'), 100) : undefined;
    socket.once('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('ticker has no port');
  return {
    port: address.port,
    received: () => received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('TCP idle timeout', () => {
  let env: TestEtcd;
  let echo: EchoServer;
  let ticker: Awaited<ReturnType<typeof startOneWay>>;
  let sink: Awaited<ReturnType<typeof startOneWay>>;
  let router: RunningRouter;
  const clients: TestClient[] = [];
  const status = (id: string): RouteStatus | undefined => router.status().routes.find((r) => r.instanceId === id);

  before(async () => {
    env = await startTestEtcd();
    echo = await startEchoServer('db');
    ticker = await startOneWay(true);
    sink = await startOneWay(false);
    router = await startRouter(
      { etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root, idleTimeoutMs },
      { log: silentLogger() },
    );
  });

  after(() => stopRouterTest({ connections: clients, router, backends: [echo, ticker, sink], env }));

  it('closes a session with no bytes either way, and keeps sessions with traffic in either direction', async () => {
    const echoPort = await freePort();
    const tickPort = await freePort();
    const sinkPort = await freePort();
    await putRoute(env, tcpRoute('pg-echo', echoPort, echo.port));
    await putRoute(env, tcpRoute('pg-tick', tickPort, ticker.port));
    await putRoute(env, tcpRoute('pg-sink', sinkPort, sink.port));
    await waitFor(() => ['pg-echo', 'pg-tick', 'pg-sink'].every((id) => status(id)?.listening), {
      description: 'routes bound',
      timeoutMs: 5000,
      intervalMs: 20,
    });

    // The idle session's last byte comes after this instant: it may not close before + timeout.
    const openedAt = Date.now();
    const idle = await TestClient.connect(echoPort);
    const talking = await TestClient.connect(sinkPort, '127.0.0.2');
    const listening = await TestClient.connect(tickPort, '127.0.0.3');
    clients.push(idle, talking, listening);
    await idle.waitForText('db\n');
    // Client → database only, and database → client only.
    const pinger = setInterval(() => talking.socket.write('ping\n'), 100);
    try {
      await idle.waitForClose(idleTimeoutMs * 5);
      const idleFor = Date.now() - openedAt;
      assert.ok(idleFor >= idleTimeoutMs - 10, `closed after ${idleFor} ms, not before the timeout`);
      await waitFor(() => echo.sockets.size === 0, {
        description: 'upstream of the idle session closed',
        timeoutMs: 2000,
      });

      // Two timeouts' worth of traffic later, both busy sessions are still open.
      await waitFor(() => sink.received() >= busyMessages * 'ping\n'.length, {
        description: `${busyMessages} pings`,
        timeoutMs: idleTimeoutMs * 10,
        intervalMs: 20,
      });
      await waitFor(() => (listening.received.match(/tick\n/g)?.length ?? 0) >= busyMessages, {
        description: `${busyMessages} ticks`,
        timeoutMs: idleTimeoutMs * 10,
        intervalMs: 20,
      });
    } finally {
      clearInterval(pinger);
    }
    assert.equal(talking.closed, false, 'a client that keeps sending stays connected');
    assert.equal(listening.closed, false, 'a client the database keeps talking to stays connected');
    assert.equal(status('pg-echo')?.limited.idleTimeout, 1);
    assert.equal(status('pg-tick')?.limited.idleTimeout, 0);
    assert.equal(status('pg-sink')?.limited.idleTimeout, 0);
    assert.equal(router.status().sessions.idleTimeoutMs, idleTimeoutMs);
  });
});
