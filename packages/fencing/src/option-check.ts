import type { FenceOptionValue } from './device-config.js';
import type { AgentMetadata, AgentParameter } from './metadata-xml.js';
import { isSecretOption } from './secrets.js';

/**
 * Options refused even when an agent declares them: each makes a Debian agent run a
 * program or script, or write a file, that the option names (`password_script` goes
 * through `/bin/sh`, `openrc` is sourced by one, `ssh_options` can carry a ProxyCommand,
 * `ipmitool_path` picks the executable, `debug_file`, `token_file` and `logfile` are
 * written as root), or makes `off` exit 0 without fencing (`help`, `version`). `*_x`
 * matches every name ending in `_x`.
 */
export const defaultRefusedOptions: readonly string[] = [
  '*_path',
  '*_script',
  'ssh_options',
  'openrc',
  'debug_file',
  'token_file',
  'logfile',
  'help',
  'version',
];

/** One option an agent will not be sent, and why (never its value). */
export interface OptionProblem {
  option: string;
  problem: string;
}

/** Agents read `-` and `_` alike in option names (fencing.py does); case matters. */
function canonical(name: string): string {
  return name.replaceAll('-', '_');
}

/** Every name an agent answers to: its parameters' names, then their long options. */
function parameterIndex(metadata: AgentMetadata): Map<string, AgentParameter> {
  const index = new Map<string, AgentParameter>();
  for (const p of metadata.parameters) index.set(canonical(p.name), p);
  for (const p of metadata.parameters) {
    for (const long of p.longOptions) if (!index.has(canonical(long))) index.set(canonical(long), p);
  }
  return index;
}

function matches(pattern: string, name: string): boolean {
  const p = canonical(pattern);
  return p.startsWith('*') ? name.endsWith(p.slice(1)) : name === p;
}

const booleanWords = new Set(['1', 'yes', 'on', 'true', '0', 'no', 'off', 'false']);

/**
 * Characters Debian's agents would split or interpret: several build a command line as a
 * string and `shlex.split` it (`ssh … user@<ip>`, `ipmitool -H <ip>`), so a space or a
 * quote in `ip` becomes another argument (`-oProxyCommand=…`), as does a leading `-`.
 */
function unsafeArgument(text: string): string | undefined {
  if (/\s/.test(text)) return 'must not contain spaces';
  if (/["'`\\]/.test(text)) return 'must not contain quotes or backslashes';
  if (text.startsWith('-')) return 'must not start with "-"';
  return undefined;
}

/** Why `value` does not fit `parameter`'s declared type, or undefined. */
function typeProblem(parameter: AgentParameter, name: string, value: FenceOptionValue): string | undefined {
  const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  switch (parameter.type) {
    case 'boolean':
      return booleanWords.has(text.toLowerCase()) ? undefined : 'must be a boolean (true or false)';
    case 'integer':
      return /^[+-]?[0-9]{1,15}$/.test(text) && typeof value !== 'boolean' ? undefined : 'must be an integer';
    case 'second':
      return /^[0-9]{1,9}$/.test(text) && typeof value !== 'boolean' ? undefined : 'must be a whole number of seconds';
    case 'select': {
      const ok = parameter.choices.some((c) => c.toLowerCase() === text.toLowerCase());
      return ok ? undefined : `must be one of ${parameter.choices.join(', ')}`;
    }
    default:
      // Secrets are quoted by the agents that put them on a command line, or sent in-band.
      return isSecretOption(name) || isSecretOption(parameter.name) ? undefined : unsafeArgument(text);
  }
}

/**
 * Checks a device's options against what its agent declared (`action=metadata`): unknown
 * names, refused names (`refused`, see {@link defaultRefusedOptions}) and values of the
 * wrong type are reported, one problem per option. Problems never quote a value.
 */
export function checkAgentOptions(
  metadata: AgentMetadata,
  options: Readonly<Record<string, FenceOptionValue>>,
  refused: readonly string[],
): OptionProblem[] {
  const index = parameterIndex(metadata);
  const problems: OptionProblem[] = [];
  for (const [option, value] of Object.entries(options)) {
    const parameter = index.get(canonical(option));
    if (!parameter) {
      problems.push({ option, problem: `${metadata.agent} has no option ${option} (see its action=metadata)` });
      continue;
    }
    const names = [option, parameter.name, ...parameter.longOptions].map(canonical);
    const rule = refused.find((pattern) => names.some((n) => matches(pattern, n)));
    if (rule) {
      problems.push({
        option,
        problem: `refused (matches ${rule}): it makes the agent run a program or write a file it names, or exit without fencing`,
      });
      continue;
    }
    const wrong = typeProblem(parameter, option, value);
    if (wrong) problems.push({ option, problem: wrong });
  }
  return problems;
}
