import type { EventRecord, NodeRecord, Resources } from '@service-foundry/core';
import type { Command } from '../command.js';
import { intOption } from '../command.js';
import { printJson, printTable } from '../output.js';
import { client } from './services.js';

interface NodeView extends NodeRecord {
  allocated: Resources;
  replicas: Array<{ instanceId: string; ordinal: number }>;
}

export const nodes: Command = {
  name: 'nodes',
  summary: 'list live nodes with capacity and allocation',
  args: [],
  options: { json: { type: 'boolean' } },
  async run(_args, options) {
    const all = await (await client()).get<NodeView[]>('/sf/v1/nodes');
    if (options.json) return printJson(all);
    printTable(
      ['node', 'address', 'cpu (m)', 'memory (MB)', 'disk (MB)', 'replicas'],
      all.map((n) => [
        n.name,
        n.address,
        `${n.allocated.cpuMillis}/${n.capacity.cpuMillis}`,
        `${n.allocated.memoryMb}/${n.capacity.memoryMb}`,
        `${n.allocated.diskMb}/${n.capacity.diskMb}`,
        n.replicas.length,
      ]),
    );
  },
};

export const events: Command = {
  name: 'events',
  summary: 'show recent platform events (placements, elections, failures)',
  args: [],
  options: { limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(_args, options) {
    const limit = intOption(options, 'limit', 50, 1, 1000);
    const all = await (await client()).get<EventRecord[]>(`/sf/v1/events?limit=${limit}`);
    if (options.json) return printJson(all);
    printTable(
      ['time', 'kind', 'instance', 'node', 'message'],
      all.map((e) => [e.at, e.kind, e.instanceId ?? '-', e.node ?? '-', e.message]),
    );
  },
};
