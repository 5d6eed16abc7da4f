import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type RouteRecord, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouterOptions, type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import { putRoute, stopRouterTest, TestClient } from './helpers.js';
import { type HttpBackend, startHttpBackend } from './http-backend.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const host = 'app.example.test';

/** A router with one HTTP route to a fresh backend, and clients that can come from any loopback address. */
function httpFixture(options: Partial<RouterOptions>, limits?: { maxSessions: number }) {
  const f = {
    env: undefined as unknown as TestEtcd,
    backend: undefined as unknown as HttpBackend,
    router: undefined as unknown as RunningRouter,
    sockets: [] as Socket[],
    clients: [] as TestClient[],
    status: (): RouteStatus | undefined => f.router.status().routes.find((r) => r.instanceId === 'web-1'),
    /** Sends a request and resolves with the response head (the body may still be coming). */
    send: (from: string, path = '/'): Promise<{ res: IncomingMessage; body: Promise<string> }> =>
      new Promise((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: f.router.httpPort ?? 0,
            path,
            headers: { host },
            agent: false,
            localAddress: from,
          },
          (res) => {
            f.sockets.push(res.socket);
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              body += chunk;
            });
            const done = new Promise<string>((settle) => {
              res.once('end', () => settle(body));
              res.once('close', () => settle(body));
            });
            resolve({ res, body: done });
          },
        );
        req.on('error', reject);
        req.end();
      }),
    get: async (from: string, path = '/'): Promise<Reply> => {
      const { res, body } = await f.send(from, path);
      return { status: res.statusCode ?? 0, headers: res.headers, body: await body };
    },
    /** A WebSocket handshake: the upgraded socket, or the status of the refusal. */
    upgrade: (from: string): Promise<{ status: number; socket?: Socket }> =>
      new Promise((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port: f.router.httpPort ?? 0,
          path: '/socket',
          agent: false,
          localAddress: from,
          headers: {
            host,
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-key': randomBytes(16).toString('base64'),
            'sec-websocket-version': '13',
          },
        });
        req.on('upgrade', (res, socket) => {
          f.sockets.push(socket);
          socket.on('error', () => {});
          resolve({ status: res.statusCode ?? 0, socket });
        });
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0 });
        });
        req.on('error', reject);
        req.end();
      }),
    start: async () => {
      f.env = await startTestEtcd();
      f.backend = await startHttpBackend('backend');
      f.router = await startRouter(
        { etcdEndpoints: [f.env.endpoint], keyspaceRoot: f.env.keys.root, httpPort: 0, ...options },
        { log: silentLogger() },
      );
      const route: RouteRecord = {
        instanceId: 'web-1',
        protocol: 'http',
        port: 0,
        hostname: host,
        target: { host: '127.0.0.1', port: f.backend.port },
        epoch: 1,
        ...(limits ? { limits } : {}),
      };
      await putRoute(f.env, route);
      await waitFor(() => f.status()?.listening, { description: 'http route served', timeoutMs: 5000, intervalMs: 20 });
    },
    stop: () =>
      stopRouterTest({
        connections: [...f.sockets, ...f.clients],
        router: f.router,
        backends: [f.backend],
        env: f.env,
      }),
  };
  return f;
}

describe('HTTP route limits', () => {
  const f = httpFixture({ idleTimeoutMs: 0 }, { maxSessions: 2 });
  before(() => f.start());
  after(() => f.stop());

  it('counts requests in flight against the route and the client share, answering 429/503 without the backend', async () => {
    const first = await f.send('127.0.0.2', '/hold');
    assert.equal(first.res.statusCode, 200);
    await waitFor(() => f.backend.held.size === 1, { description: 'request held', timeoutMs: 2000 });
    const seen = f.backend.requests();

    const tooMany = await f.get('127.0.0.2');
    assert.equal(tooMany.status, 429, 'one address may hold half the route');
    assert.match(tooMany.body, /too many sessions from your address/);

    const second = await f.send('127.0.0.3', '/hold');
    await waitFor(() => f.backend.held.size === 2, { description: 'second request held', timeoutMs: 2000 });
    const full = await f.get('127.0.0.4');
    assert.equal(full.status, 503);
    assert.equal(full.headers['retry-after'], '1');
    assert.equal((await f.upgrade('127.0.0.4')).status, 503, 'a WebSocket counts against the same limit');
    assert.equal(f.backend.requests(), seen + 1, 'refused requests never reached the backend');
    assert.deepEqual(f.status()?.limited, { routeLimit: 2, clientLimit: 1, fdBudget: 0, idleTimeout: 0 });
    assert.equal(f.status()?.activeSessions, 2);

    f.backend.releaseHeld();
    assert.equal(await first.body, 'held backend released');
    assert.equal(await second.body, 'held backend released');
    await waitFor(() => f.status()?.activeSessions === 0, { description: 'slots released', timeoutMs: 2000 });
    assert.equal((await f.get('127.0.0.4')).status, 200);
    const ws = await f.upgrade('127.0.0.4');
    assert.equal(ws.status, 101, 'a WebSocket gets through once a slot is free');
  });
});

describe('HTTP connection budget', () => {
  const f = httpFixture({ idleTimeoutMs: 0, maxOpenSessions: 2, maxSessionsPerClient: 1 });
  before(() => f.start());
  after(() => f.stop());

  it('refuses connections over the budget or the per-address total before reading a request', async () => {
    const open = async (from: string) => {
      const client = await TestClient.connect(f.router.httpPort ?? 0, from);
      f.clients.push(client);
      await waitFor(() => f.router.status().sessions.open === f.clients.filter((c) => !c.closed).length, {
        description: 'connection admitted',
        timeoutMs: 2000,
        intervalMs: 10,
      });
      return client;
    };
    const refused = async (from: string) => {
      const client = TestClient.start(f.router.httpPort ?? 0, from);
      f.clients.push(client);
      await client.waitForClose(1000);
      assert.equal(client.received, '');
    };
    const kept = await open('127.0.0.2');
    await refused('127.0.0.2');
    await open('127.0.0.3');
    await refused('127.0.0.4');
    assert.deepEqual(f.router.status().httpLimited, { routeLimit: 0, clientLimit: 1, fdBudget: 1, idleTimeout: 0 });
    assert.equal(f.backend.requests(), 0);

    kept.destroy();
    await waitFor(() => f.router.status().sessions.open === 1, { description: 'slot released', timeoutMs: 2000 });
    assert.equal((await f.get('127.0.0.4')).status, 200);
  });
});

describe('HTTP idle timeout', () => {
  // Long enough that a busy machine stalling the event loop cannot pass for idling.
  const idleTimeoutMs = 800;
  const f = httpFixture({ idleTimeoutMs });
  before(() => f.start());
  after(() => f.stop());

  it('closes a silent request in flight and a silent WebSocket, keeps a busy WebSocket open', async () => {
    // The silent sessions' last bytes come after this instant.
    const openedAt = Date.now();
    const held = await f.send('127.0.0.2', '/hold');
    const silent = await f.upgrade('127.0.0.3');
    const busy = await f.upgrade('127.0.0.4');
    assert.equal(silent.status, 101);
    assert.equal(busy.status, 101);
    let echoed = 0;
    busy.socket?.on('data', (chunk: Buffer) => {
      echoed += chunk.toString('latin1').split('ping').length - 1;
    });
    const pinger = setInterval(() => busy.socket?.write('ping'), 100);
    try {
      assert.match(await held.body, /^held /, 'the request is cut, not answered');
      await waitFor(() => silent.socket?.destroyed || silent.socket?.readableEnded, {
        description: 'silent WebSocket closed',
        timeoutMs: idleTimeoutMs * 5,
        intervalMs: 10,
      });
      assert.ok(Date.now() - openedAt >= idleTimeoutMs - 10, 'not closed before the timeout');
      await waitFor(() => f.backend.held.size === 0, { description: 'upstream request dropped', timeoutMs: 2000 });
      // Two timeouts' worth of traffic: the busy one is still open after it.
      await waitFor(() => echoed >= (2 * idleTimeoutMs) / 100, {
        description: 'two timeouts of echoes',
        timeoutMs: idleTimeoutMs * 10,
        intervalMs: 20,
      });
    } finally {
      clearInterval(pinger);
    }
    assert.equal(busy.socket?.destroyed, false, 'a WebSocket with traffic stays open');
    assert.equal(f.status()?.limited.idleTimeout, 2);
    assert.equal(f.status()?.activeSessions, 1);
  });
});
