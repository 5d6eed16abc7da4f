import type { NodeControlView } from '@service-foundry/api';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { printJson, say } from '../output.js';
import { client } from './services.js';

const actions = ['cordon', 'uncordon', 'drain'] as const;
const listed = 20;

export const node: Command = {
  name: 'node',
  summary: 'cordon (no new replicas), drain (and report what remains) or uncordon a node',
  args: ['cordon|uncordon|drain', 'NODE'],
  options: { reason: { type: 'string' }, json: { type: 'boolean' } },
  async run([action, name], options) {
    if (!actions.includes(action as (typeof actions)[number])) {
      throw new UsageError(`expected cordon, uncordon or drain, got ${JSON.stringify(action)}`);
    }
    const body = typeof options.reason === 'string' ? { reason: options.reason } : {};
    const path = `/sf/v1/nodes/${encodeURIComponent(name ?? '')}/${action}`;
    const { body: view } = await (await client()).request<NodeControlView>('POST', path, body);
    if (options.json) return printJson(view);
    say(view.message);
    if (action === 'drain' && view.remaining.length > 0) {
      for (const replica of view.remaining.slice(0, listed)) say(`  ${replica}`);
      if (view.remaining.length > listed) say(`  … and ${view.remaining.length - listed} more`);
    }
  },
};
