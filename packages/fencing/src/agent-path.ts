import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FenceAgentRefusedError } from './errors.js';
import { untrustedExecutable } from './trusted-file.js';

/**
 * What a fence agent's file name looks like: Debian's `fence_ipmilan`, `fence_ilo3_ssh`,
 * …, and the project's `fence_sf_sim`. `sh`, `python3` or `env` never match, so no shell
 * or interpreter can be named as an agent, whatever directory it sits in.
 */
const agentName = /^fence_[A-Za-z0-9_]{1,64}$/;

/** The project's own agents (`fence_sf_sim`): `packages/fencing/bin`. */
export function projectAgentDir(): string {
  return fileURLToPath(new URL('../bin', import.meta.url));
}

/** The path of the project's own fence agent for the one-machine simulation. */
export function simAgentPath(): string {
  return join(projectAgentDir(), 'fence_sf_sim');
}

/** Debian's `fence-agents` location and the project's own bin. */
export function defaultAgentDirs(): string[] {
  return ['/usr/sbin', projectAgentDir()];
}

/** An agent that passed the allow-list: what to spawn, and what identifies its version. */
export interface ResolvedAgent {
  /** The `agent` as configured. */
  agent: string;
  /** The real path (symlinks resolved): what is spawned. */
  path: string;
  /** Its file name, e.g. `fence_ipmilan`. */
  name: string;
  /** File identity for the metadata cache: a replaced or rewritten agent is asked again. */
  version: string;
}

function refuse(agent: string, reason: string): never {
  throw new FenceAgentRefusedError(agent, reason);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function realDirs(dirs: readonly string[]): Promise<Set<string>> {
  const real = await Promise.all(dirs.map((d) => realpath(d).catch(() => undefined)));
  return new Set(real.filter((d): d is string => d !== undefined));
}

/** Checks the file `candidate` (found in an allowed directory) down to its real path. */
async function checkCandidate(agent: string, candidate: string, dirs: readonly string[]): Promise<ResolvedAgent> {
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (error) {
    refuse(agent, `${candidate}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  // A symlink in /usr/sbin to /bin/sh, or to another program of /usr/sbin, is not an agent.
  if (!(await realDirs(dirs)).has(dirname(real))) {
    refuse(agent, `${candidate} resolves to ${real}, outside the allowed agent directories (${dirs.join(', ')})`);
  }
  if (!agentName.test(basename(real))) {
    refuse(agent, `${candidate} resolves to ${real}, which is not named like a fence agent (fence_*)`);
  }
  let problem: string | undefined;
  try {
    problem = await untrustedExecutable(real);
  } catch (error) {
    problem = (error as Error).message;
  }
  if (problem) refuse(agent, problem);
  const stats = await stat(real);
  return {
    agent,
    path: real,
    name: basename(real),
    version: [real, stats.dev, stats.ino, stats.size, stats.mtimeMs, stats.ctimeMs].join('\0'),
  };
}

/**
 * Resolves a device's `agent` against the allow-list `dirs` (absolute, normalised paths):
 * a name `fence_*` is looked for in `dirs` in order (never on PATH); an absolute path must
 * be `<one of dirs>/fence_*` as written. Either way the real file (symlinks resolved)
 * must also be a `fence_*` in one of `dirs`, a regular executable owned by root or this
 * user and writable by nobody else, in a directory held the same way. Throws
 * FenceAgentRefusedError saying why.
 */
export async function resolveAgent(agent: string, dirs: readonly string[]): Promise<ResolvedAgent> {
  if (agent.startsWith('/')) {
    if (normalize(agent) !== agent || agent.endsWith('/')) {
      refuse(agent, 'an agent path must be in normal form (no ".", "..", "//" or trailing "/")');
    }
    if (!agentName.test(basename(agent))) {
      refuse(agent, `${basename(agent)} is not named like a fence agent (fence_ followed by letters, digits or _)`);
    }
    if (!dirs.includes(dirname(agent))) {
      refuse(agent, `${dirname(agent)} is not an allowed agent directory (${dirs.join(', ')})`);
    }
    return checkCandidate(agent, agent, dirs);
  }
  if (!agentName.test(agent)) {
    refuse(
      agent,
      'not a fence agent name: expected fence_ followed by letters, digits or _ (shells, interpreters and other programs are never run)',
    );
  }
  for (const dir of dirs) {
    const candidate = join(dir, agent);
    if (await exists(candidate)) return checkCandidate(agent, candidate, dirs);
  }
  refuse(agent, `no ${agent} in the allowed agent directories (${dirs.join(', ')}); PATH is not searched`);
}
