import { Catalog, connectEtcd, createLogger, EventLog, Keyspace, type Logger } from '@service-foundry/core';
import { AssignmentWatcher } from './assignment-watcher.js';
import { type AgentConfig, type AgentOptions, compileAgentConfig } from './config.js';
import type { NodeIdentity } from './container-spec.js';
import { DockerRuntime } from './docker-runtime.js';
import { NodeRegistration } from './node-registration.js';
import { Reconciler } from './reconciler.js';
import { StatusWriter } from './status-writer.js';

export interface AgentDeps {
  /** @default createLogger({ name: 'agent' }) */
  log?: Logger;
}

export interface RunningAgent {
  /** The node this agent represents. */
  node: string;
  config: Readonly<AgentConfig>;
  /**
   * When etcd last confirmed the node lease (ms since the epoch, send time of the confirmed
   * keepalive): the lease is valid at least until this plus `leaseTtlSeconds`.
   */
  lastRenewedAt(): number;
  /**
   * Stops watching and revokes the lease, so the node disappears at once. Containers keep
   * running: an agent started again adopts them.
   */
  stop(): Promise<void>;
}

/**
 * Starts the agent of one node: checks Docker and the catalog, registers the node under a
 * lease, then runs the node's assignments. Throws (and leaves nothing behind) when any of
 * that fails.
 */
export async function startAgent(
  options: AgentOptions | Readonly<AgentConfig>,
  deps: AgentDeps = {},
): Promise<RunningAgent> {
  const config = compileAgentConfig(options);
  const log = (deps.log ?? createLogger({ name: 'agent' })).child({ node: config.node });
  const catalog = await Catalog.load(config.catalogDir);
  const docker = new DockerRuntime(config.dockerSocket);
  await docker.ping();

  const client = connectEtcd({ endpoints: config.etcdEndpoints });
  const keys = new Keyspace(config.keyspaceRoot);
  const identity: NodeIdentity = { clusterId: config.clusterId, node: config.node, address: config.address };
  const events = new EventLog(client, keys, `agent/${config.node}`);
  const registration = new NodeRegistration({
    client,
    keys,
    record: { name: config.node, address: config.address, capacity: config.capacity, labels: config.labels },
    leaseTtlSeconds: config.leaseTtlSeconds,
    log,
    events,
    onReRegistered: () => statuses.rewriteAll(),
  });
  const statuses = new StatusWriter(client, keys, config.node, () => registration.leaseId(), log);
  const watcher = new AssignmentWatcher({
    client,
    keys,
    docker,
    statuses,
    identity,
    log,
    reconcileIntervalMs: config.reconcileIntervalMs,
    reconcile: (ref, signal) => reconciler.reconcile(ref, signal),
  });
  const reconciler = new Reconciler({
    client,
    keys,
    docker,
    catalog,
    statuses,
    identity,
    events,
    log,
    reconcileIntervalMs: config.reconcileIntervalMs,
    assignmentOf: (ref) => watcher.assignmentOf(ref),
    retryLater: (ref, ms) => watcher.retryLater(ref, ms),
  });

  const shutdown = async () => {
    await watcher.stop();
    await registration.stop();
    client.close();
  };
  try {
    await registration.start().catch((error: unknown) => {
      const endpoints = config.etcdEndpoints.join(', ');
      throw new Error(`cannot register node ${config.node} in etcd at ${endpoints}: ${(error as Error).message}`, {
        cause: error,
      });
    });
    await watcher.start();
  } catch (error) {
    await shutdown();
    throw error;
  }
  log.info(
    {
      address: config.address,
      capacity: config.capacity,
      clusterId: config.clusterId,
      services: catalog.entries.length,
    },
    'agent started',
  );

  let stopping: Promise<void> | undefined;
  return {
    node: config.node,
    config,
    lastRenewedAt: () => registration.lastRenewedAt,
    stop: () => {
      stopping ??= shutdown().then(() => log.info('agent stopped'));
      return stopping;
    },
  };
}
