import type { NodeView } from '@service-foundry/api';
import type { EventRecord } from '@service-foundry/core';
import type { Command } from '../command.js';
import { intOption } from '../command.js';
import { printJson, printTable } from '../output.js';
import { client } from './services.js';

/** What an operator most needs to know first: can the node take replicas, and why not. */
function nodeState(n: NodeView): string {
  if (n.fence && n.fence !== 'unfenced') return n.fence === 'failed' ? 'fencing failed' : n.fence;
  if (!n.alive) return 'not responding';
  if (n.control?.draining) return n.replicas.length ? `draining (${n.replicas.length} remain)` : 'drained';
  if (n.control?.cordoned) return 'cordoned';
  return 'ready';
}

export const nodes: Command = {
  name: 'nodes',
  summary: 'list nodes: state (ready, cordoned, draining, fenced…), capacity and allocation',
  args: [],
  options: { json: { type: 'boolean' } },
  async run(_args, options) {
    const all = await (await client()).get<NodeView[]>('/sf/v1/nodes');
    if (options.json) return printJson(all);
    printTable(
      ['node', 'state', 'address', 'cpu (m)', 'memory (MB)', 'disk (MB)', 'replicas'],
      all.map((n) => [
        n.name,
        nodeState(n),
        n.address ?? '-',
        `${n.allocated.cpuMillis}/${n.capacity?.cpuMillis ?? '?'}`,
        `${n.allocated.memoryMb}/${n.capacity?.memoryMb ?? '?'}`,
        `${n.allocated.diskMb}/${n.capacity?.diskMb ?? '?'}`,
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
