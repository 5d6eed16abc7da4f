import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, json, Keyspace, type RouteRecord, sampleValue, scrapeMetrics, waitFor } from '@service-foundry/core';
import { captureLog, type LogLine, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RouteStatus, type RunningRouter, startRouter } from '../src/index.js';
import {
  type EchoServer,
  putRoute,
  runningChildren,
  startEchoServer,
  stopRouterTest,
  TestClient,
  tcpRoute,
  tryConnect,
} from './helpers.js';

/** Pids of the HAProxy processes this test process started (the router runs in it, and they are its children). */
function haproxyPids(): number[] {
  return runningChildren(process.pid)
    .filter((child) => child.argv[0]?.endsWith('haproxy'))
    .map((child) => child.pid);
}

/** A port nothing listens on, on any machine these tests run on (tcpmux, long unused). */
const refusingPort = 1;

describe('TCP routes: one HAProxy process each', () => {
  let env: TestEtcd;
  let router: RunningRouter;
  let primaryA: EchoServer;
  let primaryB: EchoServer;
  let lines: LogLine[];
  const clients: TestClient[] = [];
  const ports = { main: 0, limits: 0, idle: 0, bad: 0, hold: 0 };

  const status = (id: string): RouteStatus | undefined =>
    router.status().routes.find((route) => route.instanceId === id);
  const serving = (id: string) =>
    waitFor(() => status(id)?.listening, { description: `${id} served by haproxy`, timeoutMs: 10_000, intervalMs: 20 });
  const open = async (port: number, from?: string): Promise<TestClient> => {
    const client = await TestClient.connect(port, from);
    clients.push(client);
    return client;
  };
  const ours = haproxyPids;

  before(async () => {
    env = await startTestEtcd();
    primaryA = await startEchoServer('primary-A');
    primaryB = await startEchoServer('primary-B');
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
    const capture = captureLog();
    lines = capture.lines;
    router = await startRouter(
      {
        etcdEndpoints: [env.endpoint],
        keyspaceRoot: env.keys.root,
        idleTimeoutMs: 0,
        defaultMaxSessions: 4,
        // Longer than the default 1 s: under CI load the route switch below took over 0.7 s
        // to reach HAProxy, and the held client must still be held when it does.
        holdWhileRefusedMs: 3000,
        metrics: { port: 0 },
      },
      { log: capture.log },
    );
  });

  after(() => stopRouterTest({ connections: clients, router, backends: [primaryA, primaryB], env }));

  it('forwards bytes both ways through HAProxy, half-close included, and reports the open sessions', async () => {
    await putRoute(env, tcpRoute('pg-main', ports.main, primaryA.port, { epoch: 10, limits: { maxSessions: 20 } }));
    await serving('pg-main');
    const client = await open(ports.main);
    await client.waitForText('primary-A\n');
    client.socket.write('ping 123\n');
    await client.waitForText('ping 123\n');
    await waitFor(() => status('pg-main')?.activeSessions === 1, {
      description: 'one session reported',
      timeoutMs: 5000,
    });
    client.socket.end();
    await client.waitForText('primary-A bye\n');
    await client.waitForClose();
    await waitFor(() => status('pg-main')?.activeSessions === 0, { description: 'session gone', timeoutMs: 5000 });
    // The metrics count what HAProxy carried: one session, its bytes each way.
    const labels = { instance: 'pg-main', port: String(ports.main) };
    const metric = async (name: string, more: Record<string, string> = {}) =>
      sampleValue((await scrapeMetrics(router.metricsUrl as string)).samples, name, { ...labels, ...more });
    await waitFor(async () => (await metric('sf_router_sessions_total')) === 1, {
      description: 'the session in sf_router_sessions_total',
      timeoutMs: 5000,
    });
    // In: "ping 123\n"; out: the greeting, the echo and the goodbye.
    assert.equal(await metric('sf_router_bytes_total', { direction: 'in' }), 'ping 123\n'.length);
    assert.equal(
      await metric('sf_router_bytes_total', { direction: 'out' }),
      'primary-A\nping 123\nprimary-A bye\n'.length,
    );
  });

  it('sends new sessions to a new epoch at once and cuts the old epoch within a second', async () => {
    const old = await open(ports.main);
    await old.waitForText('primary-A\n');
    const switchedAt = Date.now();
    await putRoute(env, tcpRoute('pg-main', ports.main, primaryB.port, { epoch: 11, limits: { maxSessions: 20 } }));
    await old.waitForClose(1000);
    assert.ok(Date.now() - switchedAt < 1000, 'old session closed within 1 s');
    await waitFor(() => primaryA.sockets.size === 0, {
      description: 'upstream to the old primary closed',
      timeoutMs: 1000,
    });
    const fresh = await open(ports.main);
    await fresh.waitForText('primary-B\n');
    // A later epoch that goes back to A uses the other server slot again, and cuts B's sessions.
    await putRoute(env, tcpRoute('pg-main', ports.main, primaryA.port, { epoch: 12, limits: { maxSessions: 20 } }));
    await fresh.waitForClose(1000);
    const again = await open(ports.main);
    await again.waitForText('primary-A\n');
    assert.equal(status('pg-main')?.epoch, 12);
  });

  it('holds new clients while the target refuses: to the new primary once the route switches, else closed after holdWhileRefusedMs', async () => {
    // The old primary is down: nothing listens on port 1. (A port from freePort() would
    // not do: a test running beside this one may listen on it by the time the client
    // connects, and the "held" client would be talking to that server.)
    await putRoute(env, tcpRoute('pg-hold', ports.hold, refusingPort, { epoch: 1 }));
    await serving('pg-hold');
    const unswitched = TestClient.start(ports.hold);
    clients.push(unswitched);
    const startedAt = Date.now();
    await unswitched.waitForClose(6000);
    const heldFor = Date.now() - startedAt;
    assert.ok(heldFor >= 2900 && heldFor < 4500, `held about holdWhileRefusedMs (3000 ms), not ${heldFor} ms`);
    assert.equal(unswitched.received, '');

    const held = TestClient.start(ports.hold);
    clients.push(held);
    // Bytes written while held wait in HAProxy, and reach the new primary after its greeting.
    held.socket.write('written while held\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(held.closed, false, 'still held');
    const switchedAt = Date.now();
    await putRoute(env, tcpRoute('pg-hold', ports.hold, primaryB.port, { epoch: 2 }));
    await held.waitForText('primary-B\n', 2000);
    // The etcd write, the router's watch, the runtime API line, then at most one 100 ms retry.
    assert.ok(Date.now() - switchedAt < 1500, 'released to the new primary right after the switch');
    await held.waitForText('written while held\n');
    held.socket.write('held, then through\n');
    await held.waitForText('held, then through\n');
  });

  it("refuses over the route limit and over one address's share with a reset, counted per reason; a raised limit applies to new sessions", async () => {
    const route = (maxSessions: number): RouteRecord =>
      tcpRoute('pg-limits', ports.limits, primaryA.port, { limits: { maxSessions }, epoch: 1 });
    await putRoute(env, route(4));
    await serving('pg-limits');
    const seen = primaryA.accepted();
    const admitted = [await open(ports.limits, '127.0.0.2'), await open(ports.limits, '127.0.0.2')];
    for (const client of admitted) await client.waitForText('primary-A\n');
    const overShare = TestClient.start(ports.limits, '127.0.0.2');
    clients.push(overShare);
    await overShare.waitForClose(1000);
    assert.equal(overShare.error?.code, 'ECONNRESET');
    for (const from of ['127.0.0.3', '127.0.0.3']) await (await open(ports.limits, from)).waitForText('primary-A\n');
    await waitFor(() => primaryA.accepted() === seen + 4, {
      description: 'four sessions reached the database',
      timeoutMs: 2000,
    });
    const overRoute = TestClient.start(ports.limits, '127.0.0.4');
    clients.push(overRoute);
    await overRoute.waitForClose(1000);
    assert.equal(overRoute.error?.code, 'ECONNRESET');
    assert.equal(primaryA.accepted(), seen + 4, 'the database never saw a refused connection');
    await waitFor(
      () => {
        const limited = status('pg-limits')?.limited;
        return limited?.routeLimit === 1 && limited.clientLimit === 1;
      },
      { description: `refusals counted per reason (${JSON.stringify(status('pg-limits')?.limited)})`, timeoutMs: 5000 },
    );

    await putRoute(env, route(6));
    await waitFor(() => status('pg-limits')?.limits.maxSessions === 6, {
      description: 'limit raised',
      timeoutMs: 2000,
    });
    await waitFor(
      async () => {
        const client = TestClient.start(ports.limits, '127.0.0.4');
        clients.push(client);
        await waitFor(() => client.closed || client.received.length > 0, { description: 'an answer', timeoutMs: 1000 });
        return client.received === 'primary-A\n';
      },
      { description: 'a new session admitted under the raised limit', timeoutMs: 2000, intervalMs: 50 },
    );
    for (const client of admitted) assert.equal(client.closed, false, 'sessions already open stay open');
  });

  it('closes a session idle in both directions after idleTimeoutMs and counts it', async () => {
    // The idle timeout is the router's: a second router, with its own keyspace root, sets one.
    const capture = captureLog();
    const idleRoot = `${env.keys.root}/idle`;
    const idleRouter = await startRouter(
      { etcdEndpoints: [env.endpoint], keyspaceRoot: idleRoot, idleTimeoutMs: 400 },
      { log: capture.log },
    );
    try {
      const idleRoute = tcpRoute('pg-idle', ports.idle, primaryA.port, { limits: { maxSessions: 5 } });
      await env.client.put(new Keyspace(idleRoot).route('pg-idle')).value(json(idleRoute));
      await waitFor(() => idleRouter.status().routes.find((r) => r.instanceId === 'pg-idle')?.listening, {
        description: 'idle route served',
        timeoutMs: 10_000,
      });
      const idle = await open(ports.idle);
      await idle.waitForText('primary-A\n');
      const quietSince = Date.now();
      await idle.waitForClose(4000);
      assert.ok(Date.now() - quietSince >= 350, 'not closed before the timeout');
      await waitFor(
        () => idleRouter.status().routes.find((r) => r.instanceId === 'pg-idle')?.limited.idleTimeout === 1,
        {
          description: 'idle closure counted',
          timeoutMs: 5000,
        },
      );
    } finally {
      await idleRouter.stop();
    }
  });

  it('serves nothing for a target that is not an IP address, says why, and serves the next target that is one', async () => {
    const notAnAddress = { host: '127.0.0.1\n  bind :1', port: primaryA.port };
    await putRoute(env, tcpRoute('pg-bad', ports.bad, 1, { target: notAnAddress }));
    const unnamed = () =>
      waitFor(() => /must be an IP address/.test(status('pg-bad')?.lastError ?? ''), {
        description: 'the reason in the status',
        timeoutMs: 2000,
      });
    await unnamed();
    assert.equal(status('pg-bad')?.listening, false);
    assert.equal(await tryConnect(ports.bad), 'ECONNREFUSED');
    assert.ok(lines.some((line) => line.msg === 'route cannot be served by haproxy'));

    await putRoute(env, tcpRoute('pg-bad', ports.bad, primaryA.port, { epoch: 2 }));
    await serving('pg-bad');
    const client = await open(ports.bad);
    await client.waitForText('primary-A\n');
    // A new epoch whose target cannot be named still ends the old epoch's sessions.
    await putRoute(env, tcpRoute('pg-bad', ports.bad, 1, { target: notAnAddress, epoch: 3 }));
    await client.waitForClose(1000);
    await unnamed();
    assert.equal(status('pg-bad')?.listening, false);
  });

  it('starts a killed HAProxy process again on the current target', async () => {
    const pid = runningChildren(process.pid).find((child) =>
      child.argv.some((arg) => arg.endsWith('/route-1.cfg')),
    )?.pid;
    assert.ok(pid, 'the process of pg-main');
    process.kill(pid, 'SIGKILL');
    await waitFor(() => status('pg-main')?.lastError?.startsWith('haproxy exited (SIGKILL)'), {
      description: 'the exit in the status',
      timeoutMs: 2000,
    });
    await serving('pg-main');
    const client = await open(ports.main);
    await client.waitForText('primary-A\n');
    assert.equal(status('pg-main')?.lastError, null);
  });

  it("stops a removed route's process, cutting its sessions and freeing its port", async () => {
    const client = await open(ports.main);
    await client.waitForText('primary-A\n');
    const before = ours().length;
    await env.client.delete().key(env.keys.route('pg-main'));
    await client.waitForClose(2000);
    await waitFor(async () => (await tryConnect(ports.main)) === 'ECONNREFUSED', {
      description: 'port freed',
      timeoutMs: 2000,
    });
    await waitFor(() => ours().length === before - 1, { description: 'its process gone', timeoutMs: 2000 });
  });

  it('stops every HAProxy process with the router', async () => {
    assert.ok(ours().length > 0);
    await router.stop();
    assert.deepEqual(ours(), []);
  });
});
