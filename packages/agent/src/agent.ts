import { Catalog, connectEtcd, createLogger, EventLog, Keyspace, type Logger, SecretBox } from '@service-foundry/core';
import { AppliedReplicas } from './applied-replicas.js';
import { AssignmentWatcher } from './assignment-watcher.js';
import { BackupRunner, DirectoryBackupStore } from './backups/index.js';
import { type AgentConfig, type AgentOptions, compileAgentConfig } from './config.js';
import { ContainerLifecycle } from './container-lifecycle.js';
import type { NodeIdentity, ReplicaRef } from './container-spec.js';
import { DockerRuntime } from './docker-runtime.js';
import { NodeRegistration } from './node-registration.js';
import { PositionReporter } from './position-reporter.js';
import { Reconciler } from './reconciler.js';
import { ReplicatedReconciler } from './replicated-reconciler.js';
import { ReplicationCommands } from './replication-commands.js';
import { Seeder } from './seeder.js';
import { SelfFence } from './self-fence.js';
import { ShippedReconciler } from './shipped-reconciler.js';
import { StatusWriter } from './status-writer.js';
import { VolumeService } from './volume-service.js';

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
  /** True while the node is self-fenced: its primaries were killed and none may start (I3). */
  selfFenced(): boolean;
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
  const secrets = await SecretBox.fromKeyFile(config.secretsKeyFile);

  const client = connectEtcd({ endpoints: config.etcdEndpoints, tls: config.etcdTls });
  const keys = new Keyspace(config.keyspaceRoot);
  const identity: NodeIdentity = { clusterId: config.clusterId, node: config.node, address: config.address };
  const events = new EventLog(client, keys, `agent/${config.node}`);
  const backupStore = config.volumes
    ? new DirectoryBackupStore({ root: config.volumes.backupDir, fsync: config.volumes.fsync })
    : undefined;
  const volumeService = config.volumes
    ? new VolumeService({
        config: config.volumes,
        docker,
        identity,
        events,
        log,
        assignmentOf: (ref) => watcher.assignmentOf(ref),
        backupDir: async (instanceId, backupId) => backupStore?.completedDir(instanceId, backupId),
        flushCommand: (serviceName) => catalog.byServiceName(serviceName)?.flush,
        commandTimeoutMs: config.replicationCommandTimeoutMs,
      })
    : undefined;
  let volumeUrl: string | undefined;
  try {
    volumeUrl = await volumeService?.start();
  } catch (error) {
    client.close();
    throw new Error(`cannot start the volume server of node ${config.node}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const registration = new NodeRegistration({
    client,
    keys,
    record: {
      name: config.node,
      address: config.address,
      capacity: config.capacity,
      labels: config.labels,
      ...(volumeUrl ? { volumeUrl } : {}),
    },
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
  const retryLater = (ref: ReplicaRef, ms: number) => watcher.retryLater(ref, ms);
  const applied = new AppliedReplicas();
  const commands = new ReplicationCommands(docker, config.replicationCommandTimeoutMs);
  const selfFence = new SelfFence({
    docker,
    applied,
    statuses,
    events,
    log,
    node: config.node,
    lastRenewedAt: () => registration.lastRenewedAt,
    leaseTtlMs: config.leaseTtlSeconds * 1000,
    marginMs: config.selfFenceMarginMs,
    checkIntervalMs: config.selfFenceCheckIntervalMs,
    onLifted: () => watcher.reconcileAll(),
  });
  const lifecycle = new ContainerLifecycle({
    client,
    keys,
    secrets,
    docker,
    statuses,
    identity,
    events,
    log,
    reconcileIntervalMs: config.reconcileIntervalMs,
    retryLater,
  });
  const replicated = new ReplicatedReconciler({
    client,
    keys,
    docker,
    statuses,
    identity,
    events,
    log,
    lifecycle,
    applied,
    commands,
    selfFenced: () => selfFence.active,
    peerAddress: config.peerAddress,
    retryLater,
  });
  const seeder = new Seeder({
    client,
    keys,
    docker,
    identity,
    events,
    log,
    volumes: config.volumes,
    leaseId: () => registration.leaseId(),
    retryLater,
  });
  const shipped = new ShippedReconciler({
    client,
    keys,
    docker,
    statuses,
    identity,
    log,
    applied,
    selfFenced: () => selfFence.active,
    retryLater,
  });
  const reconciler = new Reconciler({
    seeder,
    shipped,
    client,
    keys,
    docker,
    catalog,
    statuses,
    identity,
    events,
    log,
    lifecycle,
    replicated,
    applied,
    assignmentOf: (ref) => watcher.assignmentOf(ref),
  });
  // Without a store, backups of this node's primaries fail with a message saying so.
  const backups = new BackupRunner({
    client,
    keys,
    docker,
    catalog,
    events,
    log,
    node: config.node,
    clusterId: config.clusterId,
    store: backupStore,
    commandTimeoutMs: config.replicationCommandTimeoutMs,
    fsync: config.volumes?.fsync ?? true,
  });
  const positions = new PositionReporter({
    catalog,
    applied,
    statuses,
    commands,
    log,
    intervalMs: config.positionIntervalMs,
    refreshMs: config.positionRefreshMs,
  });

  const shutdown = async () => {
    await positions.stop();
    await backups.stop();
    await selfFence.stop();
    await watcher.stop();
    await registration.stop();
    await volumeService?.stop();
    client.close();
  };
  try {
    await registration.start().catch((error: unknown) => {
      const endpoints = config.etcdEndpoints.join(', ');
      throw new Error(`cannot register node ${config.node} in etcd at ${endpoints}: ${(error as Error).message}`, {
        cause: error,
      });
    });
    // From the first confirmed lease on, independent of etcd events.
    selfFence.start();
    await watcher.start();
    await backups.start();
    positions.start();
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
      leaseTtlSeconds: config.leaseTtlSeconds,
      selfFenceAfterMs: config.leaseTtlSeconds * 1000 - config.selfFenceMarginMs,
    },
    'agent started',
  );

  let stopping: Promise<void> | undefined;
  return {
    node: config.node,
    config,
    lastRenewedAt: () => registration.lastRenewedAt,
    selfFenced: () => selfFence.active,
    stop: () => {
      stopping ??= shutdown().then(() => log.info('agent stopped'));
      return stopping;
    },
  };
}
