import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import { putRoute, stopRouterTest, tcpRoute } from './helpers.js';

const mib = 1024 * 1024;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A stand-in database with two behaviours picked by the first byte a client sends:
 * `S` (sink): hash everything that follows until the client's FIN, then answer the hash;
 * `P` (push): write `payload` at once, as fast as the connection takes it, then FIN.
 */
async function startBulkServer(payload: Buffer): Promise<{
  port: number;
  sockets: Set<Socket>;
  pushed: () => number;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let pushed = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', (first) => {
      if (first[0] === 'P'.charCodeAt(0)) {
        // Counts what the kernel accepted: what is queued in Node is not sent yet.
        let offset = 0;
        const pump = () => {
          while (offset < payload.length) {
            const chunk = payload.subarray(offset, offset + 256 * 1024);
            offset += chunk.length;
            const more = socket.write(chunk, () => {
              pushed += chunk.length;
            });
            if (!more) {
              socket.once('drain', pump);
              return;
            }
          }
          socket.end();
        };
        pump();
        return;
      }
      const hash = createHash('sha256');
      hash.update(first.subarray(1));
      socket.on('data', (chunk) => hash.update(chunk));
      socket.on('end', () => socket.end(hash.digest('hex')));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('bulk server has no port');
  return {
    port: address.port,
    sockets,
    pushed: () => pushed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('TCP routes: bulk transfers and backpressure', () => {
  const payload = randomBytes(48 * mib);
  let env: TestEtcd;
  let router: RunningRouter;
  let bulk: Awaited<ReturnType<typeof startBulkServer>>;
  let port: number;
  const sockets: Socket[] = [];
  const status = (): RouteStatus | undefined => router.status().routes.find((r) => r.instanceId === 'bulk-1');

  before(async () => {
    env = await startTestEtcd();
    bulk = await startBulkServer(payload);
    port = await freePort();
    router = await startRouter(
      { etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root, idleTimeoutMs: 0 },
      { log: silentLogger() },
    );
    await putRoute(env, tcpRoute('bulk-1', port, bulk.port));
    await waitFor(() => status()?.listening, { description: 'route bound', timeoutMs: 5000, intervalMs: 20 });
  });

  after(() => stopRouterTest({ connections: sockets, router, backends: [bulk], env }));

  it('carries 48 MiB from client to target intact, and the answer after the client’s FIN', async () => {
    const socket = await open(port);
    sockets.push(socket);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.write('S');
    for (let offset = 0; offset < payload.length; offset += 64 * 1024) {
      if (!socket.write(payload.subarray(offset, offset + 64 * 1024))) {
        await new Promise((resolve) => socket.once('drain', resolve));
      }
    }
    socket.end();
    await ended;
    assert.equal(answer, sha256(payload), 'the target hashed exactly the bytes the client sent');
    await waitFor(() => status()?.activeSessions === 0, { description: 'session released', timeoutMs: 5000 });
  });

  it('stops reading from the target while the client does not read, then delivers every byte', async () => {
    const socket = await open(port);
    sockets.push(socket);
    socket.pause();
    socket.write('P');
    // The target pushes until the kernel buffers on both legs and the router's one buffer
    // are full, then its writes stall: what it got out must stay far below the payload.
    // Stalled: the same count on two polls 300 ms apart.
    let last = -1;
    const stalledAt = await waitFor(
      () => {
        const now = bulk.pushed();
        const stalled = now > 0 && now === last;
        last = now;
        return stalled ? now : undefined;
      },
      { description: 'the target stalls while the client does not read', timeoutMs: 20_000, intervalMs: 300 },
    );
    assert.ok(stalledAt < 24 * mib, `the target got ${stalledAt} bytes out before stalling`);

    const received: Buffer[] = [];
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.resume();
    await ended;
    const all = Buffer.concat(received);
    assert.equal(all.length, payload.length);
    assert.equal(sha256(all), sha256(payload), 'every byte arrived, in order');
    socket.end();
    await waitFor(() => status()?.activeSessions === 0, { description: 'session released', timeoutMs: 5000 });
  });

  it('cuts a session stalled by backpressure when a new epoch arrives', async () => {
    // Not half-open: like psql, the client closes once the router's side is gone.
    const socket = connect({ port, host: '127.0.0.1' });
    sockets.push(socket);
    socket.on('error', () => {});
    socket.pause();
    socket.write('P');
    await waitFor(() => bulk.sockets.size === 1 && status()?.activeSessions === 1, {
      description: 'target pushing',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    let received = 0;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const cutAt = Date.now();
    await putRoute(env, tcpRoute('bulk-1', port, bulk.port, { epoch: 2 }));
    await waitFor(() => bulk.sockets.size === 0, { description: 'upstream closed', timeoutMs: 1000, intervalMs: 10 });
    assert.ok(Date.now() - cutAt < 1000, 'cut within a second');
    // A paused client learns of the cut only when it reads: it gets what its kernel had
    // queued, then the end (a reset that arrives behind queued bytes reads as an end).
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.resume();
    await closed;
    assert.ok(received < payload.length, `the cut session ended early (${received} bytes)`);
    await waitFor(() => status()?.activeSessions === 0, { description: 'session released', timeoutMs: 5000 });
  });
});
