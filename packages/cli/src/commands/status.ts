import type { SchedulerView } from '@service-foundry/api';
import { BrokerClient } from '../broker-client.js';
import { readClusterFile } from '../cluster/cluster-file.js';
import { componentStatus } from '../cluster/components.js';
import { etcdMemberHealth } from '../cluster/etcd-health.js';
import { isolatedRuntime } from '../cluster/isolated-nodes.js';
import type { NodeState } from '../cluster/node-runtime.js';
import type { Command } from '../command.js';
import { metricsEndpoints } from '../metrics-endpoints.js';
import { printJson, printTable, say } from '../output.js';
import { describeExit } from '../supervision/supervision-state.js';
import { loadTarget, stateDir } from '../target.js';
import { componentNames } from './up.js';

export const status: Command = {
  name: 'status',
  summary: 'show the platform processes and what the broker sees',
  args: [],
  options: { json: { type: 'boolean' } },
  async run(_args, options) {
    const dir = stateDir();
    const cluster = await readClusterFile(dir);
    const components = [];
    for (const name of cluster ? componentNames(cluster) : []) {
      const status = await componentStatus(dir, name);
      const supervision = status.supervision;
      components.push({
        name,
        pid: status.pid ?? null,
        running: status.pid !== undefined,
        supervised: status.supervisor !== undefined,
        supervisorPid: status.supervisor ?? null,
        restarts: supervision?.restarts ?? 0,
        lastExit: supervision?.lastExit ?? null,
        restartAt: supervision?.phase === 'backoff' ? supervision.restartAt : null,
      });
    }
    const etcd = cluster ? await etcdMemberHealth(dir, cluster) : [];
    const runtime = cluster ? isolatedRuntime(dir, cluster) : undefined;
    const isolatedNodes: NodeState[] = [];
    for (const node of runtime?.nodes ?? [])
      isolatedNodes.push(await (runtime as NonNullable<typeof runtime>).state(node.name));
    let broker: { url: string; reachable: boolean; nodes?: number; instances?: number } | undefined;
    let schedulers: SchedulerView[] = [];
    try {
      const target = await loadTarget();
      const client = new BrokerClient(target);
      const [nodes, instances, members] = await Promise.all([
        client.get<unknown[]>('/sf/v1/nodes'),
        client.get<unknown[]>('/sf/v1/instances'),
        client.get<SchedulerView[]>('/sf/v1/schedulers'),
      ]);
      schedulers = members;
      broker = { url: target.url, reachable: true, nodes: nodes.length, instances: instances.length };
    } catch (error) {
      broker = { url: (error as Error).message, reachable: false };
    }
    const nodeRuntime = cluster?.nodeRuntime ?? null;
    const metrics = cluster ? await metricsEndpoints(dir, componentNames(cluster)) : [];
    // Exit 1 (text and JSON alike) while anything is down.
    const nodeDown = isolatedNodes.some((n) => n.power === 'off' || n.link !== 'up' || n.partitions.length > 0);
    const leaderless = broker.reachable && !schedulers.some((m) => m.leader);
    const etcdDown = etcd.some((m) => !m.healthy);
    if (!broker.reachable || components.some((c) => !c.running) || nodeDown || leaderless || etcdDown)
      process.exitCode = 1;
    if (options.json) {
      return printJson({
        stateDir: dir,
        clusterId: cluster?.clusterId ?? null,
        nodeRuntime,
        components,
        etcd,
        ...(runtime ? { nodeSegment: runtime.addressing.segment, isolatedNodes } : {}),
        broker,
        schedulers,
        metrics,
      });
    }
    say(`cluster: ${cluster?.clusterId ?? `none in ${dir}`}`);
    printTable(
      ['component', 'pid', 'state', 'supervised', 'restarts', 'last exit'],
      components.map((c) => [
        c.name,
        c.pid ?? '-',
        c.running ? 'running' : c.restartAt ? `restarting at ${c.restartAt.slice(11, 23)}` : 'stopped',
        c.supervised ? `yes (pid ${c.supervisorPid})` : 'no',
        c.restarts,
        describeExit(c.lastExit),
      ]),
    );
    if (etcd.length > 1) {
      const leader = etcd.find((m) => m.leader)?.name;
      const down = etcd.filter((m) => !m.healthy).map((m) => `${m.name} (${m.error})`);
      const inNodes = etcd
        .filter((m) => m.node !== undefined)
        .map((m) => `${m.name} in ${m.node}`)
        .join(', ');
      say(
        `etcd: ${etcd.length - down.length} of ${etcd.length} members answer, raft leader ${leader ?? 'none'}${inNodes ? `; ${inNodes}` : ''}${down.length ? `; not answering: ${down.join(', ')}` : ''}`,
      );
    } else if (etcd[0] && !etcd[0].healthy) {
      say(`etcd does not answer: ${etcd[0].error}`);
    }
    if (runtime) {
      say(`isolated nodes on ${runtime.addressing.segment} (this machine: ${runtime.addressing.hostAddress})`);
      printTable(
        ['node', 'address', 'power', 'link', 'partitions', 'dockerd', 'agent'],
        isolatedNodes.map((n) => [
          n.node,
          n.address,
          n.power,
          n.link,
          n.partitions.join(',') || '-',
          n.dockerd ?? '-',
          n.agent ? `${n.agent.pid}${n.agent.paused ? ' (paused)' : ''}` : '-',
        ]),
      );
    } else if (cluster) {
      say('nodes share this machine’s Docker Engine');
    }
    say(
      broker.reachable
        ? `broker ${broker.url}: ${broker.nodes} nodes, ${broker.instances} service instances`
        : `broker: ${broker.url}`,
    );
    if (broker.reachable) {
      const leader = schedulers.find((m) => m.leader);
      const standbys = schedulers.filter((m) => !m.leader).map((m) => m.name);
      say(
        leader
          ? `scheduler leader: ${leader.name} (since ${leader.startedAt}); standing by: ${standbys.join(', ') || 'none'}`
          : 'scheduler leader: none registered (nothing is placed or failed over)',
      );
    }
    if (metrics.length)
      printTable(
        ['component', 'metrics'],
        metrics.map((m) => [m.name, m.url]),
      );
  },
};
