import type { InstanceExplanation } from '@service-foundry/api';
import type { Command } from '../command.js';
import { BrokerError, UsageError } from '../errors.js';
import { instancePath } from '../instance-path.js';
import { printJson, say } from '../output.js';
import { client } from './services.js';

/**
 * `sf explain NAME [--json]`: the broker's analysis of one instance (docs/explain.md) —
 * where each replica runs and why, what happens if each node died now, durability, lag,
 * the last backup and the risks — printed as the sentences the broker wrote.
 */
export const explain: Command = {
  name: 'explain',
  summary: 'explain one service instance: placement, what if each node died, risks',
  args: ['NAME'],
  options: { json: { type: 'boolean' } },
  async run([name], options) {
    const broker = await client();
    let explanation: InstanceExplanation;
    try {
      explanation = await broker.get<InstanceExplanation>(instancePath(name ?? '', '/explain'));
    } catch (error) {
      if (error instanceof BrokerError && error.status === 404) {
        throw new UsageError(`service instance ${JSON.stringify(name)} not found (see \`sf services\`)`);
      }
      throw error;
    }
    if (options.json) return printJson(explanation);
    for (const sentence of explanation.sentences) say(sentence);
  },
};
