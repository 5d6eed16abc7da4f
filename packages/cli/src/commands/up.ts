import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { SchedulerView } from '@service-foundry/api';
import { Catalog, ProcessError, waitFor } from '@service-foundry/core';
import { BrokerClient } from '../broker-client.js';
import {
  brokersOf,
  type ClusterFile,
  etcdMembersOf,
  newPassword,
  readClusterFile,
  routersOf,
  schedulersOf,
  writeClusterFile,
} from '../cluster/cluster-file.js';
import { ComponentConfigs } from '../cluster/component-configs.js';
import {
  componentPaths,
  componentStatus,
  spawnComponent,
  spawnUnsupervised,
  stopComponent,
  writeComponentConfig,
} from '../cluster/components.js';
import { checkDocker } from '../cluster/docker-check.js';
import { applyClusterAccess, etcdBootProcess, startClusterEtcd, waitForMember } from '../cluster/etcd-bootstrap.js';
import {
  agentBootProcess,
  chooseNodeRuntime,
  isolatedRuntime,
  type NodeRuntimeChoice,
} from '../cluster/isolated-nodes.js';
import { holdBlock, nodeAddressing, reserveBlock } from '../cluster/node-addresses.js';
import { ClusterPki } from '../cluster/pki.js';
import { ephemeralOverlap, freeListenPort, freePortOr } from '../cluster/ports.js';
import { configureSimulatedFencing } from '../cluster/simulated-fencing.js';
import { type StartUpFailure, StartUpWatch } from '../cluster/start-up-watch.js';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { assignMetricsPorts } from '../metrics-endpoints.js';
import { say } from '../output.js';
import { ProgressDisplay } from '../progress-display.js';
import { saveTarget, stateDir } from '../target.js';
import { buildImages } from './images.js';

export function componentNames(
  cluster: Pick<
    ClusterFile,
    | 'nodes'
    | 'externalEtcd'
    | 'etcdClientPort'
    | 'etcdPeerPort'
    | 'etcdMembers'
    | 'routerHost'
    | 'routerHosts'
    | 'schedulers'
    | 'brokerPort'
    | 'brokerPorts'
  >,
): string[] {
  // Agents before the scheduler: a controller that starts first would find the primaries'
  // nodes missing and fence them as lost.
  return [
    ...etcdMembersOf(cluster).map((m) => m.name),
    ...cluster.nodes.map((n) => `agent-${n.name}`),
    ...schedulersOf(cluster),
    ...brokersOf(cluster).map((b) => b.name),
    ...routersOf(cluster).map((r) => r.name),
  ];
}

async function firstCluster(
  options: Record<string, string | boolean | undefined>,
  dir: string,
): Promise<{ cluster: ClusterFile; choice: NodeRuntimeChoice }> {
  const nodeCount = intOption(options, 'nodes', 3, 1, 20);
  // Loopback addresses 127.0.0.1, .2, ...: each router its own, all on the same ports.
  const routerHosts = Array.from({ length: intOption(options, 'routers', 2, 1, 8) }, (_, i) => `127.0.0.${i + 1}`);
  // Two of each by default: a crashed leader or broker is covered while its supervisor restarts it.
  const schedulers = intOption(options, 'schedulers', 2, 1, 3);
  const brokers = intOption(options, 'brokers', 2, 1, 4);
  const ports = typeof options['router-ports'] === 'string' ? options['router-ports'] : '30000-30999';
  const match = /^(\d+)-(\d+)$/.exec(ports);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < 1024 || max > 65535 || min > max)
    throw new UsageError('--router-ports must look like 30000-30999');
  const external = typeof options.etcd === 'string' ? options.etcd.split(',') : [];
  const etcdMemberCount = intOption(options, 'etcd-members', 1, 1, 5);
  if (etcdMemberCount % 2 === 0)
    throw new UsageError('--etcd-members is 1, 3 or 5 (an odd count: a majority must survive)');
  if (etcdMemberCount > 1 && external.length)
    throw new UsageError('--etcd-members goes with the etcd `sf up` runs, not --etcd');
  const externalTls = externalEtcdTls(options, external.length > 0);
  // Memorable fixed ports by default; --random-ports lets several clusters start at once.
  // Each port once: nothing listens on them yet, so "free" alone would not keep two apart.
  const chosen = new Set<number>();
  const port = async (preferred: number) => {
    let next = options['random-ports'] ? await freeListenPort() : await freePortOr(preferred);
    while (chosen.has(next)) next = await freeListenPort();
    chosen.add(next);
    return next;
  };
  const clusterId = `sf-${newPassword()
    .slice(0, 8)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}`;
  const givenBrokerPort =
    options['broker-port'] === undefined ? undefined : intOption(options, 'broker-port', 0, 1, 65535);
  if (givenBrokerPort !== undefined) chosen.add(givenBrokerPort);
  const brokerPorts = [givenBrokerPort ?? (await port(8470))];
  while (brokerPorts.length < brokers) brokerPorts.push(await port((brokerPorts.at(-1) as number) + 1));
  const brokerPort = brokerPorts[0] as number;
  const choice = await chooseNodeRuntime({
    sharedEngine: options['shared-engine'] === true,
    externalEtcd: external.length > 0,
    nodes: nodeCount,
  });
  // On isolated nodes several members go one per node, as on hosts: a node's power loss
  // takes its member, and a majority on the other nodes goes on.
  const placeInNodes = choice.mode === 'isolated' && etcdMemberCount > 1;
  if (placeInNodes && etcdMemberCount > nodeCount) {
    throw new UsageError(
      `--etcd-members ${etcdMemberCount} on isolated nodes puts one member in each node: give --nodes ${etcdMemberCount} or more`,
    );
  }
  const etcdPorts: Array<{ clientPort: number; peerPort: number; node?: string }> = [];
  for (let i = 0; i < etcdMemberCount; i++) {
    etcdPorts.push({
      clientPort: await port(23790 + i),
      peerPort: await port(23800 + i),
      ...(placeInNodes ? { node: `node-${i + 1}` } : {}),
    });
  }
  const block = choice.mode === 'isolated' ? await reserveBlock(dir, `${clusterId}-`) : undefined;
  const addressing = block === undefined ? undefined : nodeAddressing(block);
  const cluster: ClusterFile = {
    clusterId,
    keyspaceRoot: '/sf',
    externalEtcd: external,
    ...(externalTls ? { externalEtcdTls: externalTls } : {}),
    etcdClientPort: etcdPorts[0]?.clientPort as number,
    etcdPeerPort: etcdPorts[0]?.peerPort as number,
    ...(etcdMemberCount > 1 ? { etcdMembers: etcdPorts } : {}),
    brokerPort,
    brokerPorts,
    schedulers,
    brokerUsername: 'admin',
    brokerPassword: newPassword(),
    osbUsername: 'platform',
    osbPassword: newPassword(),
    viewerUsername: 'viewer',
    viewerPassword: newPassword(),
    volumeSecret: newPassword(),
    routerHost: routerHosts[0] as string,
    routerHosts,
    routerHttpPort: await port(8480),
    routerPortMin: min,
    routerPortMax: max,
    nodeRuntime: choice.mode,
    ...(block === undefined ? {} : { nodeBlock: block }),
    // An isolated node's address is on its segment; a node sharing this machine's network
    // gets a loopback address of its own, so a replica's address still says which node holds it.
    nodes: Array.from({ length: nodeCount }, (_, i) => ({
      name: `node-${i + 1}`,
      address: addressing ? addressing.nodeAddress(i + 1) : `127.0.1.${i + 1}`,
    })),
  };
  return { cluster, choice };
}

/** The ports the cluster's own listeners use (etcd, brokers, the routers' HTTP port). */
function clusterPorts(cluster: Readonly<ClusterFile>): Set<number> {
  return new Set([
    cluster.etcdClientPort,
    cluster.etcdPeerPort,
    ...etcdMembersOf(cluster).flatMap((m) => [m.clientPort, m.peerPort]),
    cluster.routerHttpPort,
    ...brokersOf(cluster).map((b) => b.port),
  ]);
}

/** `--etcd-ca/--etcd-cert/--etcd-key`: the identity components use with an external etcd. */
function externalEtcdTls(options: Record<string, string | boolean | undefined>, external: boolean) {
  const files = { caFile: options['etcd-ca'], certFile: options['etcd-cert'], keyFile: options['etcd-key'] };
  const given = Object.values(files).filter((f) => typeof f === 'string');
  if (given.length === 0) return undefined;
  if (!external) throw new UsageError('--etcd-ca, --etcd-cert and --etcd-key go with --etcd URLS');
  if (given.length !== 3) throw new UsageError('give all of --etcd-ca, --etcd-cert and --etcd-key');
  const path = (f: unknown) => (isAbsolute(f as string) ? (f as string) : resolve(f as string));
  return { caFile: path(files.caFile), certFile: path(files.certFile), keyFile: path(files.keyFile) };
}

/**
 * The pid of `name` when it runs under its supervisor. One left running without a
 * supervisor (someone killed the supervisor) is stopped, so that it starts again supervised.
 */
async function supervisedOrStopped(dir: string, name: string): Promise<number | undefined> {
  const status = await componentStatus(dir, name);
  if (status.supervisor !== undefined) return status.pid ?? status.supervisor;
  if (status.pid !== undefined) {
    say(`${name} (pid ${status.pid}) runs without its supervisor: restarting it supervised`);
    await stopComponent(dir, name);
  }
  return undefined;
}

/** Credentials added since a cluster was first set up are made on its next `sf up`. */
function withMissingSecrets(cluster: Readonly<ClusterFile>): ClusterFile | undefined {
  const missing = {
    ...(cluster.volumeSecret ? {} : { volumeSecret: newPassword() }),
    ...(cluster.osbPassword ? {} : { osbUsername: 'platform', osbPassword: newPassword() }),
    ...(cluster.viewerPassword ? {} : { viewerUsername: 'viewer', viewerPassword: newPassword() }),
  };
  return Object.keys(missing).length ? { ...cluster, ...missing } : undefined;
}

export const up: Command = {
  name: 'up',
  summary: 'start etcd, schedulers, brokers, routers and N agents (each supervised) on this machine',
  args: [],
  options: {
    nodes: { type: 'string' },
    etcd: { type: 'string' },
    'broker-port': { type: 'string' },
    'router-ports': { type: 'string' },
    'skip-images': { type: 'boolean' },
    'random-ports': { type: 'boolean' },
    'etcd-ca': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
    'etcd-members': { type: 'string' },
    'shared-engine': { type: 'boolean' },
    routers: { type: 'string' },
    schedulers: { type: 'string' },
    brokers: { type: 'string' },
  },
  async run(_args, options) {
    const dir = stateDir();
    let cluster = await readClusterFile(dir);
    if (!cluster) {
      const first = await firstCluster(options, dir);
      cluster = first.cluster;
      await writeClusterFile(dir, cluster);
      say(`New cluster ${cluster.clusterId}; state in ${dir}`);
      say(
        `Nodes: ${first.choice.mode === 'isolated' ? 'isolated' : 'sharing this machine’s Docker Engine'} — ${first.choice.reason}`,
      );
      const overlap = await ephemeralOverlap(cluster.routerPortMin, cluster.routerPortMax);
      if (overlap) {
        say(
          `warning: router ports ${overlap} overlap the kernel's ephemeral ports: an outgoing connection may hold one and keep the router from listening there; prefer a range below`,
        );
      }
    } else if (
      options.nodes ||
      options.etcd ||
      options['etcd-ca'] ||
      options['broker-port'] ||
      options['router-ports'] ||
      options['shared-engine'] ||
      options.routers ||
      options.schedulers ||
      options.brokers ||
      options['etcd-members']
    ) {
      throw new UsageError(
        `cluster already set up in ${dir}: run \`sf down --purge\` to start over with other options`,
      );
    } else {
      say(
        `Nodes: ${cluster.nodeRuntime === 'isolated' ? 'isolated' : 'sharing this machine’s Docker Engine'}, as this cluster was set up (\`sf down --purge\` to choose again)`,
      );
      if (cluster.routerDataPlane === 'node')
        say(
          "Routers: this cluster was set up on the router's own TCP bridge, which is gone; its TCP routes now go through HAProxy (docs/router.md)",
        );
    }
    const completed = withMissingSecrets(cluster);
    if (completed) {
      cluster = completed;
      await writeClusterFile(dir, cluster);
    }
    const volumeSecret = cluster.volumeSecret as string;
    await checkDocker();
    if (!options['skip-images']) await buildImages(await Catalog.load(), false);

    const progress = new ProgressDisplay();
    const runtime = isolatedRuntime(dir, cluster);
    if (runtime) {
      await holdBlock(runtime.spec.block, dir, `${cluster.clusterId}-`);
      progress.status(
        `node network ${runtime.addressing.segment} (a namespace per node, a switch, this machine at ${runtime.addressing.hostAddress})`,
      );
      await runtime.ensureNetwork();
    }
    const etcdHosts = runtime ? [runtime.addressing.hostAddress] : [];
    const membersInNodes = etcdMembersOf(cluster).filter((m) => m.node !== undefined);
    const pki = new ClusterPki(join(dir, 'pki'));
    progress.status('certificates (cluster CA, etcd, one identity per component, volume and service TLS per node)');
    await pki.ensure(cluster.nodes, {
      routerHosts: routersOf(cluster).map((r) => r.host),
      etcdHosts: [...etcdHosts, ...membersInNodes.map((m) => m.host)],
    });
    const configs = new ComponentConfigs(cluster, pki, dir);
    const etcdMembers = etcdMembersOf(cluster).map((m) => m.name);
    const loopbackComponents = componentNames(cluster).filter(
      (n) => !etcdMembers.includes(n) && !(runtime && n.startsWith('agent-')),
    );
    configs.metricsPorts = await assignMetricsPorts(
      dir,
      loopbackComponents,
      async (n) => (await componentStatus(dir, n)).pid !== undefined,
      clusterPorts(cluster),
    );
    if (cluster.externalEtcd.length === 0) {
      if (runtime && membersInNodes.length) {
        // Each such node is powered on as far as its member; its agent starts once etcd is set up.
        progress.status(
          `powering on ${membersInNodes.map((m) => m.node).join(', ')} with their etcd members (${membersInNodes.map((m) => m.name).join(', ')}; TLS, client certificates required, supervised)`,
        );
        await Promise.all(
          membersInNodes.map(async (member) => {
            const node = member.node as string;
            await runtime.prepareNode(node, [
              await etcdBootProcess(dir, cluster, pki, member),
              await agentBootProcess(dir, node),
            ]);
            await runtime.powerOn(node, { through: member.name });
            await waitForMember(
              dir,
              member,
              pki,
              async () => (await componentStatus(dir, member.name)).supervisor !== undefined,
            );
          }),
        );
      }
      const missing: string[] = [];
      for (const { name } of etcdMembersOf(cluster).filter((m) => m.node === undefined)) {
        const pid = await supervisedOrStopped(dir, name);
        if (pid) progress.status(`${name} already running (pid ${pid})`);
        else missing.push(name);
      }
      if (missing.length) {
        progress.status(`starting ${missing.join(', ')} (TLS, client certificates required, supervised)`);
        await startClusterEtcd(dir, cluster, pki, etcdHosts, missing);
      }
      progress.status('etcd: one user and role per component, authentication on');
      await applyClusterAccess(configs.etcdEndpoints, cluster, pki);
    }
    const images = runtime ? (await Catalog.load()).entries.map((e) => e.runtime.image) : [];
    if (runtime) {
      // Isolated nodes are powered on as wholes, side by side: dockerd, the images, the agent.
      progress.status(`powering on ${runtime.nodes.map((n) => n.name).join(', ')} (dockerd, images, agent each)`);
      const booted = await Promise.all(
        cluster.nodes.map(async (node) => {
          const isolated = runtime.node(node.name);
          const agentConfig = configs.agent(node, volumeSecret, {
            etcdHost: runtime.addressing.hostAddress,
            dockerSocket: isolated.engine.socket,
          });
          await writeComponentConfig(dir, `agent-${node.name}`, agentConfig);
          // A node holding a member has its boot file (member, agent) from above already.
          if (!membersInNodes.some((m) => m.node === node.name)) {
            await runtime.prepareNode(node.name, [await agentBootProcess(dir, node.name)]);
          }
          const result = await runtime.powerOn(node.name, { images });
          return `${node.name} ${result.started.length ? `started ${result.started.join(', ')}` : 'already on'}`;
        }),
      );
      progress.status(`nodes: ${booted.join('; ')}`);
    }
    const routers = routersOf(cluster);
    const brokers = brokersOf(cluster);
    const schedulers = schedulersOf(cluster);
    for (const name of componentNames(cluster).filter((n) => !etcdMembers.includes(n))) {
      const node = cluster.nodes.find((n) => `agent-${n.name}` === name);
      if (runtime && node) continue;
      // Shared-engine agents run unsupervised: their fence device powers a node off by
      // killing its agent, and a supervisor would power it back on.
      const running = node ? (await componentStatus(dir, name)).pid : await supervisedOrStopped(dir, name);
      if (running) {
        progress.status(`${name} already running (pid ${running})`);
        continue;
      }
      progress.status(`starting ${name}`);
      const router = routers.find((r) => r.name === name);
      const broker = brokers.find((b) => b.name === name);
      if (schedulers.includes(name)) {
        await spawnComponent(dir, name, 'scheduler', configs.scheduler(name));
      } else if (broker) {
        await spawnComponent(dir, name, 'broker', configs.broker(broker));
      } else if (router) {
        await spawnComponent(dir, name, 'router', configs.router(router));
      } else if (node) {
        await spawnUnsupervised(dir, name, 'agent', configs.agent(node, volumeSecret));
      }
    }
    const [firstUrl, ...otherUrls] = brokers.map((b) => `http://127.0.0.1:${b.port}`);
    const target = {
      url: firstUrl as string,
      // sf turns to the next broker when one refuses connections (crashed, restarting).
      ...(otherUrls.length ? { fallbackUrls: otherUrls } : {}),
      username: cluster.brokerUsername,
      password: cluster.brokerPassword,
    };
    await saveTarget(target);
    const broker = new BrokerClient(target);
    // Every broker must answer, not only the first one sf would use.
    const eachBroker = brokers.map((b) => new BrokerClient({ ...target, url: `http://127.0.0.1:${b.port}` }));
    progress.status('waiting for the brokers, the nodes and a scheduler leader');
    const watch = await StartUpWatch.begin(dir, componentNames(cluster));
    let failure: StartUpFailure | undefined;
    await waitFor(
      async () => {
        failure = await watch.failure();
        if (failure) return true;
        const answers = await Promise.all(eachBroker.map((b) => b.get<unknown[]>('/sf/v1/nodes')));
        if (!answers.every((nodes) => nodes.length === cluster.nodes.length)) return false;
        // Nothing is placed or failed over until a scheduler leads.
        return (await broker.get<SchedulerView[]>('/sf/v1/schedulers')).some((s) => s.leader);
      },
      {
        description: `a scheduler leader, the brokers at ${[target.url, ...otherUrls].join(', ')} and ${cluster.nodes.length} nodes (logs in ${join(dir, 'logs')})`,
        timeoutMs: 120_000,
        intervalMs: 200,
      },
    );
    if (failure) {
      const logFile = componentPaths(dir, failure.name).logFile;
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
      throw new ProcessError(
        `${failure.name} ${failure.reason} during start-up; last lines of ${logFile}:\n${tail}`,
        null,
      );
    }
    await configureSimulatedFencing(broker, dir, cluster, runtime);
    const where = runtime
      ? `isolated nodes on ${runtime.addressing.segment}`
      : 'nodes sharing this machine’s Docker Engine';
    progress.done(
      `Service Foundry is up: ${brokers.length > 1 ? 'brokers' : 'broker'} ${[target.url, ...otherUrls].join(', ')}, ${schedulers.length} scheduler${schedulers.length > 1 ? 's' : ''}, ${cluster.nodes.length} ${where}, routers on ${routers.map((r) => r.host).join(', ')}`,
    );
    say(`Logs: ${join(dir, 'logs')}. Try \`sf marketplace\`, \`sf nodes\`; stop with \`sf down\`.`);
  },
};
