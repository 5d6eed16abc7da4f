import {
  Catalog,
  CountingEventLog,
  connectEtcd,
  createLogger,
  createMetricsRegistry,
  Keyspace,
  type Logger,
  maybeStartMetricsServer,
  SecretBox,
} from '@service-foundry/core';
import { Fencing } from '@service-foundry/fencing';
import { readVolumeTls } from '@service-foundry/volumes';
import { ClusterState } from './cluster-state.js';
import { CoalescingRunner } from './coalescing-runner.js';
import { compileSchedulerConfig, schedulerOptionsFrom } from './config.js';
import type { Fencer } from './controller/failover.js';
import { Controller } from './controller.js';
import { FenceDeviceChecks } from './fence-device-checks.js';
import { meteredFencer, registerSchedulerMetrics } from './metrics.js';
import { NodeProber } from './node-prober.js';
import { Scheduler } from './scheduler.js';

export interface RunningScheduler {
  readonly name: string;
  /** `http://host:port/metrics` when the config asks for metrics. */
  readonly metricsUrl?: string;
  stop(): Promise<void>;
}

/** Starts a scheduler (and, unless disabled, a controller) against etcd. */
export async function startScheduler(
  input: unknown,
  options: { log?: Logger; fencer?: Fencer } = {},
): Promise<RunningScheduler> {
  const config = compileSchedulerConfig(input);
  const log = options.log ?? createLogger({ name: 'scheduler' });
  const keys = new Keyspace(config.keyspaceRoot);
  const secrets = await SecretBox.fromKeyFile(config.secretsKeyFile);
  const client = connectEtcd({
    endpoints: config.etcdEndpoints,
    tls: config.etcdTls,
    keepaliveMs: config.etcdKeepaliveMs,
  });
  const catalog = await Catalog.load(config.catalogDir);
  const registry = createMetricsRegistry('scheduler');
  const events = new CountingEventLog(client, keys, config.name, registry);
  const state = new ClusterState(client, keys, log);
  registerSchedulerMetrics({ registry, state, events, name: config.name, mode: config.mode });
  const scheduler = new Scheduler(client, state, schedulerOptionsFrom(config, catalog), events, log);
  const runners = [
    new CoalescingRunner('scheduler', async () => void (await scheduler.pass()), config.intervalMs, log),
  ];
  const fencing = new Fencing(client, keys, {}, { log, secrets });
  const prober =
    config.controller && config.nodeProbe.intervalMs > 0
      ? new NodeProber({
          ...config.nodeProbe,
          tls: config.etcdTls ? await readVolumeTls(config.etcdTls) : undefined,
          nodes: () => state.nodes.items.values(),
          onChange: () => controllerRunner.poke(),
          log,
        })
      : undefined;
  const controller = new Controller(client, state, catalog, events, log, {
    provisionTimeoutMs: config.provisionTimeoutMs,
    // STONITH: the controller runs each node's fence levels before it moves a primary.
    fencer: options.fencer ?? meteredFencer(registry, fencing, config.name),
    wake: () => controllerRunner.poke(),
    ...(prober ? { silentNodes: () => prober.silentNodes() } : {}),
  });
  // Only the leading scheduler's controller acts; the others keep their mirrors warm.
  const controllerRunner = new CoalescingRunner(
    'controller',
    async () => {
      if (scheduler.leads()) await controller.pass();
    },
    config.intervalMs,
    log,
  );
  if (config.controller) runners.push(controllerRunner);
  await state.start();
  const pokeAll = () => {
    for (const runner of runners) runner.poke();
  };
  state.onChange(pokeAll);
  if (config.controller) await controller.start(pokeAll);
  for (const runner of runners) runner.start();
  const fenceChecks =
    config.controller && config.fenceCheckIntervalMs > 0
      ? new FenceDeviceChecks({
          client,
          keys,
          fencing,
          nodes: () => state.lastKnownNodes.keys(),
          intervalMs: config.fenceCheckIntervalMs,
          active: () => scheduler.leads(),
          log,
          registry,
        })
      : undefined;
  await fenceChecks?.start();
  prober?.start();
  const metrics = await maybeStartMetricsServer(registry, config.metrics);
  log.info({ name: config.name, keyspaceRoot: config.keyspaceRoot, controller: config.controller }, 'scheduler ready');
  return {
    name: config.name,
    ...(metrics ? { metricsUrl: metrics.url } : {}),
    stop: async () => {
      await metrics?.stop();
      await fenceChecks?.stop();
      prober?.stop();
      await Promise.all(runners.map((r) => r.stop()));
      await state.close();
      await controller.close();
      await scheduler.close();
      client.close();
    },
  };
}
