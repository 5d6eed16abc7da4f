/**
 * The Prometheus endpoint every long-running component serves: one HTTP listener answering
 * `GET /metrics` (text exposition format) from the component's own `prom-client` registry.
 *
 * Each component has a registry of its own rather than prom-client's global one, so that
 * tests (and `sf up --shared-engine`) can run several components in one process without
 * their families colliding. The endpoint has no login: it is bound to loopback unless the
 * config says otherwise, and carries no secrets and no client addresses (bounded labels:
 * instance ids, node names, route ports, results).
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** Where a component serves `/metrics`. */
export interface MetricsListen {
  /**
   * Address to listen on. Loopback by default: the endpoint has no login, so exposing it
   * to a network is a decision (put it behind a firewall or a scraping proxy).
   * @default '127.0.0.1'
   */
  host?: string;
  /** TCP port; 0 picks a free one (the running server reports it). Required. */
  port: number;
}

/** Schema piece for a component config's `metrics` field (absent or null: no endpoint). */
export const metricsListenSchema = {
  type: 'object',
  nullable: true,
  additionalProperties: false,
  required: ['port'],
  properties: {
    // nullable only for the schema's typing (an optional field); null means the default too.
    host: { type: 'string', nullable: true, default: '127.0.0.1', minLength: 1, maxLength: 253 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
  },
} as const;

/** A fresh registry with the process families (`process_*`, `nodejs_*`) and a `component` label. */
export function createMetricsRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsServer {
  /** `http://host:port/metrics`, with the port actually bound. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Serves `registry` on `listen`; anything but `GET|HEAD /metrics` answers 404. */
export async function startMetricsServer(registry: Registry, listen: MetricsListen): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        response.writeHead(200, { 'content-type': registry.contentType });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
      },
    );
  });
  // A scrape that stalls must not keep the component from stopping.
  server.requestTimeout = 10_000;
  const listenHost = listen.host ?? '127.0.0.1';
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listenHost, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    port,
    stop: () =>
      new Promise<void>((resolveStop) => {
        server.closeAllConnections();
        server.close(() => resolveStop());
      }),
  };
}

/** Starts the endpoint when `listen` is set; otherwise a no-op handle, so callers stay simple. */
export async function maybeStartMetricsServer(
  registry: Registry,
  listen: MetricsListen | null | undefined,
): Promise<MetricsServer | undefined> {
  return listen ? startMetricsServer(registry, listen) : undefined;
}
