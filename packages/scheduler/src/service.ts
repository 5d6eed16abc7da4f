import {
  Catalog,
  connectEtcd,
  createLogger,
  defaultCatalogDir,
  EventLog,
  Keyspace,
  type Logger,
} from '@service-foundry/core';
import { ClusterState } from './cluster-state.js';
import { CoalescingRunner } from './coalescing-runner.js';
import { compileSchedulerConfig } from './config.js';
import { Controller } from './controller.js';
import { Scheduler } from './scheduler.js';

export interface RunningScheduler {
  readonly name: string;
  stop(): Promise<void>;
}

/** Starts a scheduler (and, unless disabled, a controller) against etcd. */
export async function startScheduler(input: unknown, options: { log?: Logger } = {}): Promise<RunningScheduler> {
  const config = compileSchedulerConfig(input);
  const log = options.log ?? createLogger({ name: 'scheduler' });
  const keys = new Keyspace(config.keyspaceRoot);
  const client = connectEtcd({ endpoints: config.etcdEndpoints });
  const catalog = await Catalog.load(config.catalogDir || defaultCatalogDir());
  const events = new EventLog(client, keys, config.name);
  const state = new ClusterState(client, keys, log);
  const scheduler = new Scheduler(client, state, config.name, config.lockTtlSeconds, events, log);
  const controller = new Controller(client, state, catalog, config.provisionTimeoutMs, events, log);
  const runners = [
    new CoalescingRunner('scheduler', async () => void (await scheduler.pass()), config.intervalMs, log),
  ];
  if (config.controller)
    runners.push(new CoalescingRunner('controller', () => controller.pass(), config.intervalMs, log));
  await state.start();
  state.onChange(() => {
    for (const runner of runners) runner.poke();
  });
  for (const runner of runners) runner.start();
  log.info({ name: config.name, keyspaceRoot: config.keyspaceRoot, controller: config.controller }, 'scheduler ready');
  return {
    name: config.name,
    stop: async () => {
      await Promise.all(runners.map((r) => r.stop()));
      await state.close();
      await scheduler.close();
      client.close();
    },
  };
}
