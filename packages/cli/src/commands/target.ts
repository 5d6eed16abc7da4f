import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { say } from '../output.js';
import { readStdin } from '../stdin.js';
import { loadTarget, saveTarget } from '../target.js';

const usage =
  'sf target URL[,URL...] -u USER --password-stdin   (the password on standard input, e.g. from a file; further URLs: other brokers of the same platform, tried when one refuses connections)';

export const target: Command = {
  name: 'target',
  summary: 'show or set the broker the CLI talks to (an operator login; the password is read from stdin)',
  args: ['[URL]'],
  options: {
    username: { type: 'string', short: 'u' },
    'password-stdin': { type: 'boolean' },
    password: { type: 'string', short: 'p' },
  },
  async run([url], options) {
    if (!url) {
      const current = await loadTarget();
      const others = current.fallbackUrls?.length ? `, then ${current.fallbackUrls.join(', ')}` : '';
      say(`broker: ${current.url}${others} (user ${current.username})`);
      return;
    }
    if (options.password !== undefined) {
      // A command line is readable by every local user (ps, /proc/<pid>/cmdline).
      throw new UsageError(`a password on the command line is visible to every user of this machine; use ${usage}`);
    }
    if (typeof options.username !== 'string' || !options['password-stdin']) throw new UsageError(usage);
    const password = (await readStdin(4096)).replace(/\r?\n$/, '');
    if (password.length === 0) throw new UsageError(`no password on standard input; ${usage}`);
    const [first, ...fallbackUrls] = url.split(',');
    if (!first || fallbackUrls.some((u) => u === ''))
      throw new UsageError(`empty broker URL in ${JSON.stringify(url)}`);
    await saveTarget({
      url: first,
      ...(fallbackUrls.length ? { fallbackUrls } : {}),
      username: options.username,
      password,
    });
    say(`Targeting ${[first, ...fallbackUrls].join(', ')} as ${options.username}`);
  },
};
