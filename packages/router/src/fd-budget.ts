import { readFileSync } from 'node:fs';

/** Used when `/proc/self/limits` cannot be read (not Linux): the usual soft limit. */
const fallbackNofile = 1024;
/** `unlimited` is treated as this many descriptors: more sessions than that is no budget. */
const unlimitedNofile = 1_048_576;

/**
 * The soft `RLIMIT_NOFILE` of this process. Node raises its soft limit to the hard one at
 * start-up, so this is what the router can really open, not what the shell said.
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return fallbackNofile;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === 'unlimited') return unlimitedNofile;
  const value = Number(soft);
  return Number.isSafeInteger(value) && value > 0 ? value : fallbackNofile;
}

export interface SessionBudget {
  /** Sessions the router keeps open at once across all routes. */
  maxOpenSessions: number;
  /** The soft `RLIMIT_NOFILE` it was derived from or checked against. */
  nofile: number;
  /** The configured budget needs more descriptors than the process may open. */
  exceedsLimit: boolean;
}

/**
 * Each session holds two descriptors (client and upstream). The reserve keeps listeners,
 * the etcd connection, logs and sessions being refused (accepted, then closed) from
 * running out of descriptors when the budget is full.
 */
export function sessionBudget(configured: number | null, nofile = openFileLimit()): SessionBudget {
  if (configured !== null) return { maxOpenSessions: configured, nofile, exceedsLimit: configured * 2 > nofile };
  const reserve = Math.max(128, Math.ceil(nofile / 10));
  return { maxOpenSessions: Math.max(1, Math.floor((nofile - reserve) / 2)), nofile, exceedsLimit: false };
}
