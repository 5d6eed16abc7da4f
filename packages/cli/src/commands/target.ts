import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { say } from '../output.js';
import { loadTarget, saveTarget } from '../target.js';

export const target: Command = {
  name: 'target',
  summary: 'show or set the broker the CLI talks to',
  args: ['[URL]'],
  options: { username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' } },
  async run([url], options) {
    if (!url) {
      const current = await loadTarget();
      say(`broker: ${current.url} (user ${current.username})`);
      return;
    }
    if (typeof options.username !== 'string' || typeof options.password !== 'string') {
      throw new UsageError('sf target URL -u USER -p PASSWORD');
    }
    await saveTarget({ url, username: options.username, password: options.password });
    say(`Targeting ${url}`);
  },
};
