import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, metricFamilies, type RouteRecord, sampleValue, scrapeMetrics, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RunningRouter, startRouter } from '../src/index.js';
import { type EchoServer, putRoute, startEchoServer, stopRouterTest, TestClient, tcpRoute } from './helpers.js';

describe('router metrics', () => {
  let env: TestEtcd;
  let router: RunningRouter;
  let primaryA: EchoServer;
  let primaryB: EchoServer;
  let routerPort: number;
  let deadPort: number;
  const instanceId = 'pg-metrics-1';
  const deadId = 'pg-metrics-dead';
  const clients: TestClient[] = [];

  const routeStatus = (id: string) => router.status().routes.find((route) => route.instanceId === id);
  const serve = async (record: RouteRecord) => {
    await putRoute(env, record);
    await waitFor(
      () => routeStatus(record.instanceId)?.listening && routeStatus(record.instanceId)?.epoch === record.epoch,
      {
        description: `route ${record.instanceId} epoch ${record.epoch} served`,
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
  };
  const scrape = () => scrapeMetrics(router.metricsUrl as string);
  /** Waits for a sample to read `expected`: the HAProxy processes' counters are read every second. */
  const metricReaches = async (name: string, labels: Record<string, string>, expected: number) => {
    let seen: number | undefined;
    await waitFor(
      async () => {
        seen = sampleValue((await scrape()).samples, name, labels);
        return seen === expected;
      },
      {
        description: `${name} ${JSON.stringify(labels)} at ${expected} (last ${seen})`,
        timeoutMs: 5000,
        intervalMs: 20,
      },
    );
  };

  before(async () => {
    env = await startTestEtcd();
    primaryA = await startEchoServer('primary-A');
    primaryB = await startEchoServer('primary-B');
    routerPort = await freePort();
    deadPort = await freePort();
    router = await startRouter(
      { etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root, metrics: { port: 0 } },
      { log: silentLogger() },
    );
  });

  after(() => stopRouterTest({ connections: clients, router, backends: [primaryA, primaryB], env }));

  it('serves /metrics on loopback by default, and nothing else', async () => {
    assert.match(router.metricsUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const other = await fetch((router.metricsUrl as string).replace('/metrics', '/'));
    assert.equal(other.status, 404);
    const { text } = await scrape();
    assert.ok(metricFamilies(text).has('process_cpu_seconds_total'), 'process families are there too');
  });

  it('counts sessions, bytes each way, open sessions, refusals, connect errors and epoch switches', async () => {
    await serve(tcpRoute(instanceId, routerPort, primaryA.port, { epoch: 5, limits: { maxSessions: 1 } }));
    const first = await TestClient.connect(routerPort);
    clients.push(first);
    await first.waitForText('primary-A\n');
    first.socket.write('0123456789\n');
    await first.waitForText('0123456789\n');

    // Open now: one session on the route's port.
    const route = { instance: instanceId, port: String(routerPort) };
    await metricReaches('sf_router_sessions_open', route, 1);
    await metricReaches('sf_router_sessions_total', route, 1);
    let { samples } = await scrape();
    assert.equal(sampleValue(samples, 'sf_router_route_epoch', { instance: instanceId }), 5);

    // A second client is over the route's limit of one: refused, counted by reason.
    const refused = TestClient.start(routerPort);
    clients.push(refused);
    await refused.waitForClose();
    await metricReaches('sf_router_sessions_refused_total', { instance: instanceId, reason: 'routeLimit' }, 1);

    // A new epoch cuts the old session: a switch, and the closed session's bytes are counted.
    await serve(tcpRoute(instanceId, routerPort, primaryB.port, { epoch: 6, limits: { maxSessions: 1 } }));
    await first.waitForClose();
    await metricReaches('sf_router_sessions_open', route, 0);
    ({ samples } = await scrape());
    assert.equal(sampleValue(samples, 'sf_router_epoch_switches_total', { instance: instanceId }), 1);
    // Client → service: the 11 bytes written; service → client: greeting and echo.
    await metricReaches('sf_router_bytes_total', { ...route, direction: 'in' }, 11);
    await metricReaches('sf_router_bytes_total', { ...route, direction: 'out' }, 'primary-A\n0123456789\n'.length);

    // A route whose target does not listen (port 1, tcpmux: nothing here listens there):
    // the session fails to connect once the hold is over, and says so.
    await serve(tcpRoute(deadId, deadPort, 1, { epoch: 1 }));
    const doomed = await TestClient.connect(deadPort);
    clients.push(doomed);
    await doomed.waitForClose();
    await metricReaches('sf_router_connect_errors_total', { instance: deadId, port: String(deadPort) }, 1);
  });

  it('labels nothing with a client address', async () => {
    const { samples } = await scrape();
    for (const sample of samples.filter((s) => s.name.startsWith('sf_router_'))) {
      for (const value of Object.values(sample.labels)) assert.doesNotMatch(value, /^127\.|^::/);
    }
  });
});
