import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './errors.js';

export type OptionValues = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  /** One line for `sf help`. */
  summary: string;
  /** Positional arguments, e.g. `['SERVICE', 'PLAN', 'NAME']`; `[X]` marks an optional one. */
  args: string[];
  options?: NonNullable<ParseArgsConfig['options']>;
  run(args: string[], options: OptionValues): Promise<void>;
}

export function usageOf(command: Command): string {
  const opts = Object.entries(command.options ?? {}).map(([name, o]) =>
    o.type === 'boolean' ? `[--${name}]` : `[--${name} ${name.toUpperCase()}]`,
  );
  return ['sf', command.name, ...command.args, ...opts].join(' ');
}

/** Parses argv for one command; unknown flags, missing or extra arguments are usage errors. */
export function parseCommandLine(command: Command, argv: string[]): { args: string[]; options: OptionValues } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: command.options ?? {}, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nusage: ${usageOf(command)}`);
  }
  const required = command.args.filter((a) => !a.startsWith('[')).length;
  if (parsed.positionals.length < required || parsed.positionals.length > command.args.length) {
    throw new UsageError(`expected ${command.args.join(' ') || 'no arguments'}\nusage: ${usageOf(command)}`);
  }
  return { args: parsed.positionals, options: parsed.values as OptionValues };
}

/** Parses a positive integer option, or throws a usage error naming it. */
export function intOption(options: OptionValues, name: string, fallback: number, min = 1, max = 1_000_000): number {
  const raw = options[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** The `-c JSON` parameters option: absent → `{}`; anything but a JSON object is a usage error. */
export function parametersOption(options: OptionValues): Record<string, unknown> {
  const raw = options.c;
  if (typeof raw !== 'string') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`-c must be a JSON object: ${(error as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('-c must be a JSON object');
  return parsed as Record<string, unknown>;
}
