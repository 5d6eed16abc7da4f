import { rm } from 'node:fs/promises';
import Docker from 'dockerode';
import { readClusterFile, schedulersOf } from '../cluster/cluster-file.js';
import { stopComponent } from '../cluster/components.js';
import { isolatedRuntime } from '../cluster/isolated-nodes.js';
import type { Command } from '../command.js';
import { NodeRuntimeError } from '../errors.js';
import { say } from '../output.js';
import { stateDir } from '../target.js';
import { componentNames } from './up.js';

/** Removes every container and volume labelled with this cluster's id. */
async function purgeDocker(clusterId: string): Promise<{ containers: number; volumes: number }> {
  const docker = new Docker();
  const filters = JSON.stringify({ label: [`sf.cluster=${clusterId}`] });
  const containers = await docker.listContainers({ all: true, filters });
  for (const info of containers) await docker.getContainer(info.Id).remove({ force: true, v: true });
  const { Volumes } = await docker.listVolumes({ filters });
  for (const volume of Volumes ?? []) await docker.getVolume(volume.Name).remove();
  return { containers: containers.length, volumes: Volumes?.length ?? 0 };
}

export const down: Command = {
  name: 'down',
  summary: 'stop the platform; --purge also deletes its containers, volumes (data!) and state',
  args: [],
  options: { purge: { type: 'boolean' } },
  async run(_args, options) {
    const dir = stateDir();
    const cluster = await readClusterFile(dir);
    if (!cluster) {
      say(`no cluster in ${dir}`);
      return;
    }
    // The schedulers/controllers first: agents that stop look like lost nodes, and nothing
    // must fail over (or fence) because of a planned shutdown. etcd last.
    const names = componentNames(cluster);
    // All schedulers at once: one by one, a standby would take the lead from the one just
    // stopped (its fence checks included) only to be stopped in turn.
    const schedulers = schedulersOf(cluster);
    const stopped = await Promise.all(schedulers.map(async (name) => `${name}: ${await stopComponent(dir, name)}`));
    for (const line of stopped) say(line);
    for (const name of names.filter((n) => !schedulers.includes(n)).reverse()) {
      say(`${name}: ${await stopComponent(dir, name)}`);
    }
    const runtime = isolatedRuntime(dir, cluster);
    if (runtime) {
      // Their dockerds (which stop their containers cleanly unless purging), then the
      // namespaces, the switch and this machine's link to it.
      await runtime.teardown({ purge: options.purge === true });
      const left = await runtime.leftovers();
      if (left.length) throw new NodeRuntimeError(`isolated nodes not fully removed: ${left.join('; ')}`);
      say(`nodes: ${runtime.nodes.length} dockerds stopped, namespaces and ${runtime.layout.hostLink} removed`);
    }
    if (options.purge) {
      const removed = await purgeDocker(cluster.clusterId);
      await rm(dir, { recursive: true, force: true });
      const nodeData = runtime ? ', the nodes’ engines (their images, containers and volumes)' : '';
      say(`Purged ${removed.containers} containers, ${removed.volumes} volumes${nodeData} and ${dir}`);
    } else {
      say('Service containers and volumes are kept; `sf up` resumes, `sf down --purge` deletes them.');
    }
  },
};
