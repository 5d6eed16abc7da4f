import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { freePort, type RouteRecord, waitFor } from '@service-foundry/core';
import { captureLog, type LogLine, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouterOptions, type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import {
  type EchoServer,
  putRoute,
  startEchoServer,
  stopRouterTest,
  TestClient,
  tcpRoute,
  tryConnect,
} from './helpers.js';

/** A router (its log captured) in front of one stand-in database, `db`, and the client sessions a test opened. */
function tcpFixture(options: Partial<RouterOptions>) {
  const f = {
    env: undefined as unknown as TestEtcd,
    backend: undefined as unknown as EchoServer,
    router: undefined as unknown as RunningRouter,
    lines: [] as LogLine[],
    clients: [] as TestClient[],
    status: (id: string): RouteStatus | undefined => f.router.status().routes.find((r) => r.instanceId === id),
    /** A session that must get through: resolves once the database's greeting arrived. */
    admitted: async (port: number, from: string): Promise<TestClient> => {
      const client = await TestClient.connect(port, from);
      f.clients.push(client);
      await client.waitForText('db\n');
      return client;
    },
    /** A session that must be refused: closed at once, without a byte from the database. */
    refused: async (port: number, from: string): Promise<void> => {
      const seenBefore = f.backend.accepted();
      const startedAt = Date.now();
      const client = TestClient.start(port, from);
      f.clients.push(client);
      await client.waitForClose(1000);
      assert.ok(Date.now() - startedAt < 1000, 'closed within a second');
      assert.equal(client.received, '', 'nothing from the database reached the refused client');
      assert.equal(f.backend.accepted(), seenBefore, 'the database never saw the refused connection');
    },
    start: async () => {
      f.env = await startTestEtcd();
      f.backend = await startEchoServer('db');
      const capture = captureLog();
      f.lines = capture.lines;
      f.router = await startRouter(
        { etcdEndpoints: [f.env.endpoint], keyspaceRoot: f.env.keys.root, idleTimeoutMs: 0, ...options },
        { log: capture.log },
      );
    },
    stop: () => stopRouterTest({ connections: f.clients, router: f.router, backends: [f.backend], env: f.env }),
    /** Waits for a route's status to show `expected`: HAProxy's counters are read every second. */
    reports: async <T>(id: string, read: (route: RouteStatus) => T, expected: T): Promise<void> => {
      let seen: T | undefined;
      await waitFor(
        () => {
          const route = f.status(id);
          seen = route ? read(route) : undefined;
          return JSON.stringify(seen) === JSON.stringify(expected);
        },
        { description: `${id} reporting ${JSON.stringify(expected)} (last ${JSON.stringify(seen)})`, timeoutMs: 5000 },
      );
    },
  };
  return f;
}

/**
 * The limits of TCP routes, applied inside each route's HAProxy process (accept rules on
 * its session count and on a stick table of client addresses). The budget and per-address
 * total across routes are the HTTP port's (http-limits.test.ts): each TCP route has its
 * own process and descriptors.
 */
describe('TCP route limits', () => {
  const f = tcpFixture({ defaultMaxSessions: 3, limitLogIntervalMs: 300 });
  const { status, admitted, refused, reports } = f;
  const route = (instanceId: string, port: number, limits?: unknown, epoch = 1): RouteRecord =>
    tcpRoute(instanceId, port, f.backend.port, {
      epoch,
      ...(limits === undefined ? {} : { limits }),
    } as Partial<RouteRecord>);
  const serve = async (record: RouteRecord): Promise<void> => {
    await putRoute(f.env, record);
    const expected = record.limits?.maxSessions ?? 3;
    await waitFor(
      () => status(record.instanceId)?.listening && status(record.instanceId)?.limits.maxSessions === expected,
      { description: `${record.instanceId} served`, timeoutMs: 5000, intervalMs: 20 },
    );
  };

  before(() => f.start());
  after(() => f.stop());

  it('lets N sessions through, refuses the N+1-th at once, and admits again once one closes', async () => {
    const port = await freePort();
    await serve(route('pg-limit', port, { maxSessions: 4 }));
    const sessions: TestClient[] = [];
    for (let i = 0; i < 4; i += 1) sessions.push(await admitted(port, `127.0.0.${2 + i}`));

    await refused(port, '127.0.0.6');
    await reports('pg-limit', (r) => r.limited.routeLimit, 1);
    await reports('pg-limit', (r) => r.activeSessions, 4);
    for (const [i, session] of sessions.entries()) {
      session.socket.write(`still usable ${i}\n`);
      await session.waitForText(`still usable ${i}\n`);
    }

    sessions[0]?.destroy();
    await waitFor(() => status('pg-limit')?.activeSessions === 3, { description: 'slot released', timeoutMs: 5000 });
    await admitted(port, '127.0.0.6');
  });

  it('holds one client address to its share of a route while another address still gets in', async () => {
    const port = await freePort();
    await serve(route('pg-client', port, { maxSessions: 4 }));
    assert.equal(status('pg-client')?.limits.maxSessionsPerClient, 2, 'half of the route by default');
    await admitted(port, '127.0.0.2');
    await admitted(port, '127.0.0.2');
    await refused(port, '127.0.0.2');
    await reports('pg-client', (r) => r.limited, { routeLimit: 0, clientLimit: 1, fdBudget: 0, idleTimeout: 0 });
    await admitted(port, '127.0.0.3');
  });

  it("applies the router's default to a route record without limits", async () => {
    const port = await freePort();
    await serve(route('pg-old', port));
    assert.deepEqual(status('pg-old')?.limits, { maxSessions: 3, maxSessionsPerClient: 1, fromRecord: false });
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) await admitted(port, from);
    await refused(port, '127.0.0.5');
    await reports('pg-old', (r) => r.limited.routeLimit, 1);
  });

  it('applies a changed limit at the same epoch to new sessions without cutting open ones', async () => {
    const port = await freePort();
    await serve(route('pg-change', port, { maxSessions: 2 }));
    const first = await admitted(port, '127.0.0.2');
    const second = await admitted(port, '127.0.0.3');
    await serve(route('pg-change', port, { maxSessions: 1 }));
    await refused(port, '127.0.0.4');
    for (const session of [first, second]) {
      session.socket.write('after lowering\n');
      await session.waitForText('after lowering\n');
    }
    await serve(route('pg-change', port, { maxSessions: 3 }));
    await admitted(port, '127.0.0.4');
  });

  it('refuses a record with malformed limits with a clear log line, and keeps serving the others', async () => {
    const port = await freePort();
    await putRoute(f.env, route('pg-bad', port, { maxSessions: 'lots' }));
    const rejection = await waitFor(() => f.router.status().rejected.find((r) => r.instanceId === 'pg-bad'), {
      description: 'malformed limits refused',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.match(rejection.reason, /\/limits\/maxSessions must be integer/);
    const logged = f.lines.find((l) => l.msg === 'invalid route write ignored' && l.instanceId === 'pg-bad');
    assert.match(String(logged?.reason), /\/limits\/maxSessions must be integer/);
    assert.equal(await tryConnect(port), 'ECONNREFUSED', 'no listener for a refused record');

    // A route already served keeps its last good record when a write breaks its limits.
    await putRoute(f.env, route('pg-limit', status('pg-limit')?.port ?? 0, null, 2));
    await waitFor(() => /limits must be an object/.test(status('pg-limit')?.lastError ?? ''), {
      description: 'null limits refused',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(status('pg-limit')?.epoch, 1);
    assert.equal(status('pg-limit')?.limits.maxSessions, 4);
    await f.env.client.delete().key(f.env.keys.route('pg-bad'));
  });

  it('logs refusals as one line per route and reason per interval, with the count', async () => {
    const port = await freePort();
    await serve(route('pg-flood', port, { maxSessions: 1 }));
    await admitted(port, '127.0.0.2');
    const flood = Array.from({ length: 30 }, () => TestClient.start(port, '127.0.0.3'));
    f.clients.push(...flood);
    await waitFor(() => flood.every((c) => c.closed), { description: 'flood refused', timeoutMs: 5000 });
    await reports('pg-flood', (r) => r.limited.routeLimit, 30);
    const summary = () => f.lines.filter((l) => l.msg === 'sessions refused: limit reached' && l.scope === 'pg-flood');
    await waitFor(() => summary().reduce((sum, l) => sum + Number(l.count), 0) === 30, {
      description: 'refusals logged',
      timeoutMs: 5000,
      intervalMs: 50,
    });
    assert.ok(summary().length <= 2, `${summary().length} log lines for 30 refusals`);
    assert.ok(summary().every((l) => l.reason === 'routeLimit'));
  });

  it("derives the HTTP port's default connection budget from RLIMIT_NOFILE, two descriptors a connection", () => {
    // A child shell inherits the limit Node raised at start-up: an independent reading.
    const nofile = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    const reserve = Math.max(128, Math.ceil(nofile / 10));
    assert.equal(f.router.status().sessions.maxOpenSessions, Math.floor((nofile - reserve) / 2));
    assert.ok(f.router.status().sessions.maxOpenSessions * 2 < nofile);
  });
});
