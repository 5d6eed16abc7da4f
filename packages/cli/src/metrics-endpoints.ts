/**
 * Where each component `sf up` starts serves `/metrics` (docs/metrics.md). Control-plane
 * components and shared-engine agents listen on loopback, each on a port chosen free when
 * `sf up` writes its config (the previous one is kept while it is free, so scrape configs
 * stay valid across restarts). An isolated node's agent listens on its node address, on
 * the conventional port below: each node is a host of its own there, so ports never clash.
 */

import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { componentPaths } from './cluster/components.js';
import { freeListenPort } from './cluster/ports.js';

/** Port of an isolated node's agent metrics, on the node's own address. */
export const nodeAgentMetricsPort = 9464;

async function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** The `metrics` field of a component's config file, if it has one. */
async function configuredMetrics(stateDir: string, name: string): Promise<{ host: string; port: number } | undefined> {
  try {
    const text = await readFile(componentPaths(stateDir, name).configFile, 'utf8');
    const metrics = (JSON.parse(text) as { metrics?: { host?: unknown; port?: unknown } }).metrics;
    if (!metrics || typeof metrics.port !== 'number') return undefined;
    return { host: typeof metrics.host === 'string' ? metrics.host : '127.0.0.1', port: metrics.port };
  } catch {
    return undefined;
  }
}

/**
 * A loopback metrics port for each of `names`, none of them in `reserved`: the one in its config file when still free
 * (or its component is the one holding it: `running`), else a free one below the ephemeral ports (ports.ts).
 */
export async function assignMetricsPorts(
  stateDir: string,
  names: readonly string[],
  running: (name: string) => Promise<boolean>,
  reserved: ReadonlySet<number> = new Set(),
): Promise<Record<string, number>> {
  const ports: Record<string, number> = {};
  // The cluster's other listeners may not listen yet (a broker about to start): never theirs.
  const taken = new Set<number>(reserved);
  for (const name of names) {
    const previous = (await configuredMetrics(stateDir, name))?.port;
    const keep =
      previous !== undefined &&
      previous > 0 &&
      !taken.has(previous) &&
      ((await running(name)) || (await isFree(previous, '127.0.0.1')));
    let port = keep ? previous : await freeListenPort();
    while (taken.has(port)) port = await freeListenPort();
    taken.add(port);
    ports[name] = port;
  }
  return ports;
}

/** `http://host:port/metrics` of each component whose config asks for metrics (for `sf status`). */
export async function metricsEndpoints(
  stateDir: string,
  names: readonly string[],
): Promise<Array<{ name: string; url: string }>> {
  const endpoints = [];
  for (const name of names) {
    const metrics = await configuredMetrics(stateDir, name);
    if (!metrics) continue;
    const host = metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host;
    endpoints.push({ name, url: `http://${host}:${metrics.port}/metrics` });
  }
  return endpoints;
}
