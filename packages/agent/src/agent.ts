import type { Agent as HttpsAgent } from 'node:https';
import {
  Catalog,
  CountingEventLog,
  connectEtcd,
  createLogger,
  createMetricsRegistry,
  Keyspace,
  type Logger,
  type MetricsServer,
  maybeStartMetricsServer,
  nodeCodec,
  nodeFenceCodec,
  PrefixMirror,
  SecretBox,
} from '@service-foundry/core';
import { callPeer, pooledClientTlsOptions, readVolumeTls } from '@service-foundry/volumes';
import { AppliedReplicas } from './applied-replicas.js';
import { AssignmentWatcher } from './assignment-watcher.js';
import { BackupRunner, DirectoryBackupStore } from './backups/index.js';
import { CommandSessions } from './command-session.js';
import { type AgentConfig, type AgentOptions, compileAgentConfig } from './config.js';
import { ContainerLifecycle } from './container-lifecycle.js';
import { loadContainerTls, type NodeIdentity, type ReplicaRef } from './container-spec.js';
import { DockerRuntime } from './docker-runtime.js';
import { NodeRegistrationError, VolumeServerStartError } from './errors.js';
import { FailoverWatch } from './failover-watch.js';
import { FailsafeCoverage } from './failsafe-coverage.js';
import { FailsafePromises, failsafeCallName } from './failsafe-promises.js';
import { MeteredStatusWriter, registerAgentMetrics } from './metrics.js';
import { NodeRegistration } from './node-registration.js';
import { PasswordRotation } from './password-rotation.js';
import { PositionReporter } from './position-reporter.js';
import { checkPrimaryClaim } from './primary-guard.js';
import { Reconciler } from './reconciler.js';
import { ReplicaExecutor } from './replica-executor.js';
import { ReplicaObserver } from './replica-observer.js';
import { ReplicaTeardown } from './replica-teardown.js';
import { ReplicationCommands } from './replication-commands.js';
import { Seeder } from './seeder.js';
import { SelfFence } from './self-fence.js';
import { SwitchoverWatch } from './switchover-watch.js';
import { VolumeService } from './volume-service.js';

export interface AgentDeps {
  /** @default createLogger({ name: 'agent' }) */
  log?: Logger;
}

export interface RunningAgent {
  /** The node this agent represents. */
  node: string;
  config: Readonly<AgentConfig>;
  /** `http://host:port/metrics` when the config asks for metrics. */
  metricsUrl?: string;
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
  const serviceTls = config.serviceTls ? await loadContainerTls(config.serviceTls, config.peerAddress) : undefined;

  // Connections and what every part shares.
  const client = connectEtcd({
    endpoints: config.etcdEndpoints,
    tls: config.etcdTls,
    keepaliveMs: config.etcdKeepaliveMs,
  });
  const keys = new Keyspace(config.keyspaceRoot);
  const identity: NodeIdentity = {
    clusterId: config.clusterId,
    node: config.node,
    address: config.address,
    ...(serviceTls ? { serviceTls } : {}),
  };
  const registry = createMetricsRegistry('agent');
  const events = new CountingEventLog(client, keys, `agent/${config.node}`, registry);

  // The node lease, and the replica statuses written under it (again under a new lease).
  const registration = new NodeRegistration({ client, keys, leaseTtlSeconds: config.leaseTtlSeconds, log, events });
  const statuses = new MeteredStatusWriter(registry, client, keys, config.node, () => registration.leaseId(), log);
  registration.afterReRegistering(() => statuses.rewriteAll());

  // When replicas are reconciled: on every assignment change, on retries and in a periodic pass.
  const watcher = new AssignmentWatcher({
    client,
    keys,
    docker,
    statuses,
    identity,
    log,
    reconcileIntervalMs: config.reconcileIntervalMs,
  });
  const assignmentOf = (ref: ReplicaRef) => watcher.assignmentOf(ref);
  const retryLater = (ref: ReplicaRef, ms: number) => watcher.retryLater(ref, ms);

  // What is applied in each container; self-fencing (I3) kills the possible primaries among them.
  const applied = new AppliedReplicas();
  // Position readings and promotions go through one long-lived exec per container.
  const sessions = new CommandSessions(docker, log);
  const commands = new ReplicationCommands(docker, config.replicationCommandTimeoutMs, sessions);

  // The failsafe (failsafe-rule.ts): promises between agents over the volume servers' mutual
  // TLS keep covered primaries alive through an etcd outage. No volume server, no failsafe.
  const failsafe = config.volumes && config.failsafe.enabled ? config.failsafe : undefined;
  const timing = { promiseMs: config.failsafe.promiseMs, marginMs: config.selfFenceMarginMs };
  // G3: a promise ends with its primary's fence, which this copy of `fence/` shows.
  const fences = failsafe ? new PrefixMirror(client, nodeFenceCodec, keys.fences(), log) : undefined;
  // R6 needs node addresses, which the coverage's copy of the node records holds.
  const promises = failsafe
    ? new FailsafePromises({
        applied,
        assignmentOf,
        promiseMs: timing.promiseMs,
        log,
        addressOfNode: config.peerAddress === 'node' ? (node: string) => coverage?.addressOf(node) : undefined,
        fencedAt: (node: string) => {
          const record = fences?.items.get(keys.fence(node))?.value;
          return record?.state === 'fenced' ? Date.parse(record.at) : undefined;
        },
      })
    : undefined;
  // Read on the first call: the volume server reads (and checks) the same files at start.
  // Calls reuse their connections (a round every 250 ms): no TLS handshake per call.
  let peerTls: Promise<{ agent: HttpsAgent }> | undefined;
  const peerTlsOptions = (files: NonNullable<typeof config.volumes>['tls']) => {
    peerTls ??= readVolumeTls(files).then(pooledClientTlsOptions);
    return peerTls;
  };
  // One copy of `nodes/` for the failsafe (volume server URLs) and the failover watch.
  const nodes = new PrefixMirror(client, nodeCodec, keys.nodes(), log);
  const coverage: FailsafeCoverage | undefined = failsafe
    ? new FailsafeCoverage({
        client,
        keys,
        nodes,
        applied,
        node: config.node,
        log,
        timing: { ...timing, askIntervalMs: failsafe.askIntervalMs },
        needsCover: () => Date.now() - registration.lastRenewedAt > failsafe.askAfterMs || selfFence.awaitingReverify,
        localInstances: () => statuses.known().map((ref) => ref.instanceId),
        onPeersChanged: (instanceId, placedHere) => statuses.peersChanged(instanceId, placedHere),
        call: async (url, name, params) => {
          const volumes = config.volumes as NonNullable<typeof config.volumes>;
          return callPeer(url, name, params, {
            secret: volumes.secret,
            tls: await peerTlsOptions(volumes.tls),
            timeoutMs: failsafe.callTimeoutMs,
          });
        },
      })
    : undefined;
  // C2: every status says which other replicas the failsafe knows of.
  if (coverage) statuses.reportPeers((instanceId) => coverage.peersFor(instanceId));
  const selfFence: SelfFence = new SelfFence({
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
    ...(coverage ? { coveredUntil: (instanceId: string) => coverage.coveredUntil(instanceId) } : {}),
  });
  registration.onLeaseLost(() => selfFence.leaseLost());
  registration.afterReRegistering(() =>
    selfFence.reverify((entry) => checkPrimaryClaim(client, keys, config.node, entry.ref, entry.epoch ?? 0, false)),
  );
  const selfFenced = () => selfFence.active;
  const meter = registerAgentMetrics({
    registry,
    statuses,
    events,
    lastRenewedAt: () => registration.lastRenewedAt,
    selfFenced,
    failsafeKept: () => selfFence.keptPrimaries(),
    ...(promises ? { failsafePromised: () => promises.active() } : {}),
  });

  // Each replica: observe → decide (pure) → execute, or tear down, or seed its volume.
  const lifecycle = new ContainerLifecycle({ client, keys, secrets, docker, statuses, identity, events, log });
  const observer = new ReplicaObserver({
    docker,
    statuses,
    applied,
    commands,
    identity,
    log,
    reconcileIntervalMs: config.reconcileIntervalMs,
    selfFenced,
    peerAddress: config.peerAddress,
  });
  const executor = new ReplicaExecutor({
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
    selfFenced,
    ...(promises ? { failsafeHold: (instanceId: string) => promises.hold(instanceId) } : {}),
    peerAddress: config.peerAddress,
    retryLater,
  });
  const teardown = new ReplicaTeardown({
    client,
    keys,
    docker,
    statuses,
    identity,
    events,
    log,
    applied,
    assignmentDeleted: (ref, modRevision) => watcher.deletedHere(ref, modRevision),
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
    onReceived: (bytes, wireBytes) => meter.transferred('received', bytes, wireBytes),
  });
  const rotation = new PasswordRotation({
    client,
    keys,
    secrets,
    docker,
    statuses,
    identity,
    events,
    log,
    commandTimeoutMs: config.replicationCommandTimeoutMs,
  });
  const reconciler = new Reconciler({
    docker,
    catalog,
    statuses,
    identity,
    log,
    observer,
    executor,
    teardown,
    seeder,
    rotation,
    assignmentOf,
  });

  // Rule 5: replication positions and roles, read from the running replicas; urgently
  // while a switchover waits for them, promptly while a failover may be coming.
  const switchovers = new SwitchoverWatch(client, keys, log);
  const failovers = new FailoverWatch(client, keys, log, nodes);
  const positions = new PositionReporter({
    catalog,
    applied,
    statuses,
    commands,
    log,
    intervalMs: config.positionIntervalMs,
    refreshMs: config.positionRefreshMs,
    urgentIntervalMs: config.urgentPositionIntervalMs,
    urgency: switchovers,
    promptIntervalMs: config.promptPositionIntervalMs,
    promptness: failovers,
  });

  // Volumes served to other nodes, and backups of this node's primaries. Without a store,
  // backups of this node's primaries fail with a message saying so.
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
        assignmentOf,
        backupDir: async (instanceId, backupId) => backupStore?.completedDir(instanceId, backupId),
        flushCommand: (serviceName) => catalog.byServiceName(serviceName)?.flush,
        commandTimeoutMs: config.replicationCommandTimeoutMs,
        onSent: (bytes, wireBytes) => meter.transferred('sent', bytes, wireBytes),
        ...(promises ? { calls: { [failsafeCallName]: (call) => promises.answer(call) } } : {}),
      })
    : undefined;
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
    hookTimeoutMs: config.backupHookTimeoutMs,
    fsync: config.volumes?.fsync ?? true,
  });

  let metrics: MetricsServer | undefined;
  const shutdown = async () => {
    await metrics?.stop();
    await positions.stop();
    await switchovers.stop();
    await failovers.stop();
    await backups.stop();
    await selfFence.stop();
    await coverage?.stop();
    await nodes.close();
    await fences?.close();
    (await peerTls)?.agent.destroy();
    await rotation.stop();
    await watcher.stop();
    await sessions.closeAll();
    await registration.stop();
    await volumeService?.stop();
    client.close();
  };
  try {
    const volumeUrl = await volumeService?.start().catch((error: unknown) => {
      throw new VolumeServerStartError(config.node, error);
    });
    await registration
      .start({
        name: config.node,
        address: config.address,
        capacity: config.capacity,
        labels: config.labels,
        ...(volumeUrl ? { volumeUrl } : {}),
      })
      .catch((error: unknown) => {
        throw new NodeRegistrationError(config.node, config.etcdEndpoints, error);
      });
    await nodes.start();
    if (fences && promises) {
      // Without read access to fence/ (roles not yet updated after an upgrade), promises
      // simply run their course, as before G3.
      await fences.start().catch((error: unknown) => {
        log.warn({ err: error }, 'cannot read fence/: failsafe promises run their full length (run `sf etcd-roles`)');
      });
      // A claim held by a promise to a node just fenced is looked at again at once.
      fences.on('change', (changes) => {
        for (const change of changes) {
          const record = change.current?.value;
          if (record?.state !== 'fenced') continue;
          for (const instanceId of promises.promisedTo(record.node)) {
            for (const entry of applied.all()) if (entry.ref.instanceId === instanceId) retryLater(entry.ref, 0);
          }
        }
      });
    }
    await coverage?.start();
    // From the first confirmed lease on, independent of etcd events.
    selfFence.start();
    await watcher.start((ref, signal) => reconciler.reconcile(ref, signal));
    // After the watcher: a changed secret queues every replica of the node again.
    await rotation.start(() => watcher.reconcileAll());
    await backups.start();
    positions.start();
    await switchovers.start(() => positions.poke());
    await failovers.start(() => positions.poke());
    metrics = await maybeStartMetricsServer(registry, config.metrics);
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
      failsafe: failsafe ? { promiseMs: failsafe.promiseMs, askAfterMs: failsafe.askAfterMs } : 'off',
    },
    'agent started',
  );

  let stopping: Promise<void> | undefined;
  return {
    node: config.node,
    config,
    ...(metrics ? { metricsUrl: metrics.url } : {}),
    lastRenewedAt: () => registration.lastRenewedAt,
    selfFenced,
    stop: () => {
      stopping ??= shutdown().then(() => log.info('agent stopped'));
      return stopping;
    },
  };
}
