import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, request } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, type RouteRecord, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RunningRouter, startRouter } from '../src/index.js';
import { putRoute, stopRouterTest } from './helpers.js';
import { type HttpBackend, startHttpBackend, textFrame, websocketAccept } from './http-backend.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface WebSocketClient {
  status: number;
  headers: IncomingHttpHeaders;
  socket: Socket | undefined;
  key: string;
  received(): Buffer;
  closed(): boolean;
}

describe('HTTP routes', () => {
  let env: TestEtcd;
  let router: RunningRouter;
  let backendA: HttpBackend;
  let backendB: HttpBackend;
  let httpPort: number;
  const sockets: Socket[] = [];

  const get = (host: string, path = '/'): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: httpPort, path, headers: { host }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  const openWebSocket = (host: string): Promise<WebSocketClient> =>
    new Promise((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const req = request({
        host: '127.0.0.1',
        port: httpPort,
        path: '/socket',
        agent: false,
        headers: {
          host,
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-key': key,
          'sec-websocket-version': '13',
        },
      });
      req.on('upgrade', (res, socket, head) => {
        sockets.push(socket);
        let data = Buffer.from(head);
        let closed = false;
        socket.on('data', (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          closed = true;
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          socket,
          key,
          received: () => data,
          closed: () => closed,
        });
      });
      req.on('response', (res) => {
        res.resume();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          socket: undefined,
          key,
          received: () => Buffer.alloc(0),
          closed: () => true,
        });
      });
      req.on('error', reject);
      req.end();
    });

  const httpRoute = (instanceId: string, hostname: string, port: number, epoch: number): RouteRecord => ({
    instanceId,
    protocol: 'http',
    port: 0,
    hostname,
    target: { host: '127.0.0.1', port },
    epoch,
  });

  before(async () => {
    env = await startTestEtcd();
    backendA = await startHttpBackend('backend-A');
    backendB = await startHttpBackend('backend-B');
    router = await startRouter(
      { etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root, httpPort: 0, connectTimeoutMs: 2000 },
      { log: silentLogger() },
    );
    assert.ok(router.httpPort, 'http port bound');
    httpPort = router.httpPort;
    await putRoute(env, httpRoute('web-a', 'app-a.example.test', backendA.port, 3));
    await putRoute(env, httpRoute('web-b', 'app-b.example.test', backendB.port, 4));
    await putRoute(env, httpRoute('web-dead', 'dead.example.test', await freePort(), 5));
    await waitFor(() => router.status().routes.filter((r) => r.listening).length === 3, {
      description: 'three http routes applied',
      timeoutMs: 5000,
      intervalMs: 20,
    });
  });

  after(() => stopRouterTest({ connections: sockets, router, backends: [backendA, backendB], env }));

  it('routes by Host header (case and port ignored) to different backends', async () => {
    const a = await get('app-a.example.test', '/hello?x=1');
    assert.equal(a.status, 200);
    assert.match(a.body, /^backend-A GET \/hello\?x=1 host=app-a\.example\.test xff=127\.0\.0\.1/);
    const b = await get('APP-B.Example.Test:8080', '/b');
    assert.equal(b.status, 200);
    assert.equal(b.headers['x-backend'], 'backend-B');
    assert.match(b.body, /^backend-B GET \/b host=APP-B\.Example\.Test:8080/);
  });

  it('answers 404 with a short plain-text body for an unknown host', async () => {
    const reply = await get('nobody.example.test');
    assert.equal(reply.status, 404);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    assert.equal(reply.body, 'no route for this host\n');
    const ws = await openWebSocket('nobody.example.test');
    assert.equal(ws.status, 404);
  });

  it('answers 502 when the target is down', async () => {
    const reply = await get('dead.example.test');
    assert.equal(reply.status, 502);
    assert.match(reply.body, /bad gateway/);
    const ws = await openWebSocket('dead.example.test');
    assert.equal(ws.status, 502);
    assert.equal(router.status().routes.find((r) => r.instanceId === 'web-dead')?.activeSessions, 0);
  });

  it('passes a WebSocket upgrade through and carries bytes both ways', async () => {
    const ws = await openWebSocket('app-a.example.test');
    assert.equal(ws.status, 101);
    assert.equal(ws.headers['sec-websocket-accept'], websocketAccept(ws.key));
    const greeting = textFrame('hello from backend-A');
    await waitFor(() => ws.received().subarray(0, greeting.length).equals(greeting), {
      description: 'greeting frame',
      timeoutMs: 5000,
      intervalMs: 10,
    });
    ws.socket?.write('raw bytes after upgrade');
    await waitFor(() => ws.received().toString('latin1').endsWith('raw bytes after upgrade'), {
      description: 'echo through the upgraded connection',
      timeoutMs: 5000,
      intervalMs: 10,
    });
    assert.equal(router.status().routes.find((r) => r.instanceId === 'web-a')?.activeSessions, 1);
  });

  it('cuts WebSockets of an older epoch within a second when the route moves', async () => {
    const ws = await openWebSocket('app-a.example.test');
    assert.equal(ws.status, 101);
    const movedAt = Date.now();
    await putRoute(env, httpRoute('web-a', 'app-a.example.test', backendB.port, 30));
    await waitFor(() => ws.closed(), { description: 'old-epoch websocket closed', timeoutMs: 1000, intervalMs: 10 });
    assert.ok(Date.now() - movedAt < 1000);
    await waitFor(() => backendA.upgrades.size === 0, { description: 'backend A sockets closed', timeoutMs: 1000 });
    const reply = await get('app-a.example.test');
    assert.match(reply.body, /^backend-B /);
  });

  it('lets the first route keep a contested host name', async () => {
    await putRoute(env, httpRoute('web-thief', 'app-b.example.test', backendA.port, 40));
    const thief = await waitFor(() => router.status().routes.find((r) => r.instanceId === 'web-thief'), {
      description: 'conflicting route applied',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(thief.listening, false);
    assert.match(thief.lastError ?? '', /already routed to web-b/);
    assert.match((await get('app-b.example.test')).body, /^backend-B /);
    await env.client.delete().key(env.keys.route('web-thief'));
  });
});
