import { Catalog, connectEtcd, createLogger, EventLog, Keyspace, type Logger, SecretBox } from '@service-foundry/core';
import { controllerFencer, Fencing } from '@service-foundry/fencing';
import { ClusterState } from './cluster-state.js';
import { CoalescingRunner } from './coalescing-runner.js';
import { compileSchedulerConfig, schedulerOptionsFrom } from './config.js';
import type { Fencer } from './controller/failover.js';
import { Controller } from './controller.js';
import { Scheduler } from './scheduler.js';

export interface RunningScheduler {
  readonly name: string;
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
  const client = connectEtcd({ endpoints: config.etcdEndpoints, tls: config.etcdTls });
  const catalog = await Catalog.load(config.catalogDir);
  const events = new EventLog(client, keys, config.name);
  const state = new ClusterState(client, keys, log);
  const scheduler = new Scheduler(client, state, schedulerOptionsFrom(config, catalog), events, log);
  const runners = [
    new CoalescingRunner('scheduler', async () => void (await scheduler.pass()), config.intervalMs, log),
  ];
  const controller = new Controller(client, state, catalog, events, log, {
    provisionTimeoutMs: config.provisionTimeoutMs,
    // STONITH: the controller runs each node's fence levels before it moves a primary.
    fencer: options.fencer ?? controllerFencer(new Fencing(client, keys, {}, { log, secrets }), config.name),
    wake: () => controllerRunner.poke(),
  });
  const controllerRunner = new CoalescingRunner('controller', () => controller.pass(), config.intervalMs, log);
  if (config.controller) runners.push(controllerRunner);
  await state.start();
  const pokeAll = () => {
    for (const runner of runners) runner.poke();
  };
  state.onChange(pokeAll);
  if (config.controller) await controller.start(pokeAll);
  for (const runner of runners) runner.start();
  log.info({ name: config.name, keyspaceRoot: config.keyspaceRoot, controller: config.controller }, 'scheduler ready');
  return {
    name: config.name,
    stop: async () => {
      await Promise.all(runners.map((r) => r.stop()));
      await state.close();
      await controller.close();
      await scheduler.close();
      client.close();
    },
  };
}
