import { BrokerClient } from '../broker-client.js';
import { readClusterFile } from '../cluster/cluster-file.js';
import { isAlive, readPid } from '../cluster/components.js';
import type { Command } from '../command.js';
import { printJson, printTable, say } from '../output.js';
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
      const pid = await readPid(dir, name);
      components.push({ name, pid: pid ?? null, running: pid !== undefined && isAlive(pid) });
    }
    let broker: { url: string; reachable: boolean; nodes?: number; instances?: number } | undefined;
    try {
      const target = await loadTarget();
      const client = new BrokerClient(target);
      const [nodes, instances] = await Promise.all([
        client.get<unknown[]>('/sf/v1/nodes'),
        client.get<unknown[]>('/sf/v1/instances'),
      ]);
      broker = { url: target.url, reachable: true, nodes: nodes.length, instances: instances.length };
    } catch (error) {
      broker = { url: (error as Error).message, reachable: false };
    }
    if (options.json) return printJson({ stateDir: dir, clusterId: cluster?.clusterId ?? null, components, broker });
    say(`cluster: ${cluster?.clusterId ?? `none in ${dir}`}`);
    printTable(
      ['component', 'pid', 'state'],
      components.map((c) => [c.name, c.pid ?? '-', c.running ? 'running' : 'stopped']),
    );
    say(
      broker.reachable
        ? `broker ${broker.url}: ${broker.nodes} nodes, ${broker.instances} service instances`
        : `broker: ${broker.url}`,
    );
    if (!broker.reachable || components.some((c) => !c.running)) process.exitCode = 1;
  },
};
