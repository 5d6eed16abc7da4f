import {
  connectEtcd,
  createLogger,
  createMetricsRegistry,
  Keyspace,
  type Logger,
  type MetricsServer,
  maybeStartMetricsServer,
  PrefixMirror,
  routeCodec,
} from '@service-foundry/core';
import { compileRouterConfig, type RouterOptions } from './config.js';
import { DataPath } from './data-path.js';
import { RouterMeter } from './metrics.js';
import type { RouterStatus } from './status.js';

export interface RouterDependencies {
  /** @default a pino logger named `router` */
  log?: Logger;
}

export interface RunningRouter {
  /** Stops watching etcd, closes every listener and cuts every session. */
  stop(): Promise<void>;
  status(): RouterStatus;
  /** The bound HTTP port (the real one when the config asked for 0), or `null`. */
  readonly httpPort: number | null;
  /** `http://host:port/metrics` when the config asks for metrics. */
  readonly metricsUrl?: string;
}

/**
 * Serves the routes under `<keyspaceRoot>/routes/` and follows every change to them
 * without restarting: the initial routes are applied before the promise resolves.
 */
export async function startRouter(options: RouterOptions, deps: RouterDependencies = {}): Promise<RunningRouter> {
  const config = compileRouterConfig(options);
  const log = deps.log ?? createLogger({ name: 'router' });
  const keys = new Keyspace(config.keyspaceRoot);
  const client = connectEtcd({
    endpoints: config.etcdEndpoints,
    tls: config.etcdTls,
    keepaliveMs: config.etcdKeepaliveMs,
  });
  const registry = createMetricsRegistry('router');
  const data: DataPath = new DataPath(config, log, new RouterMeter(registry, () => data.status()));
  let metrics: MetricsServer | undefined;
  const mirror = new PrefixMirror(client, routeCodec, keys.routes(), log);
  mirror.on('change', (changes) => {
    for (const change of changes) data.apply(mirror.prefix, change);
  });
  mirror.on('rejected', (errors) => {
    for (const error of errors) data.refuse(mirror.prefix, error);
  });
  try {
    await data.startHttp();
    await mirror.start();
    metrics = await maybeStartMetricsServer(registry, config.metrics);
  } catch (error) {
    await mirror.close();
    await data.close();
    client.close();
    throw error;
  }
  log.info({ routes: data.table.size, httpPort: data.httpPort }, 'router started');
  let stopping: Promise<void> | undefined;
  return {
    httpPort: data.httpPort,
    status: () => data.status(),
    ...(metrics ? { metricsUrl: metrics.url } : {}),
    stop: () => {
      stopping ??= (async () => {
        await metrics?.stop();
        await mirror.close();
        await data.close();
        client.close();
      })();
      return stopping;
    },
  };
}
