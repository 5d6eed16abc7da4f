import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Agents this package ships, resolved to their files whatever PATH says. */
const builtInAgents: Readonly<Record<string, string>> = {
  fence_sf_sim: fileURLToPath(new URL('../bin/fence_sf_sim', import.meta.url)),
};

/** The path of the project's own fence agent for the one-machine simulation. */
export function simAgentPath(): string {
  return builtInAgents.fence_sf_sim as string;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** PATH's directories followed by `extraDirs`, without empty or relative entries. */
export function agentSearchDirs(extraDirs: readonly string[], pathVariable = process.env.PATH ?? ''): string[] {
  const dirs = [...pathVariable.split(delimiter), ...extraDirs].filter((d) => d.length > 0 && isAbsolute(d));
  return [...new Set(dirs)];
}

/**
 * The executable to spawn for a device's `agent`: a built-in agent, an absolute path, or a
 * name found in `searchDirs`. Throws when there is no executable file; the caller reports
 * that as the device's failure.
 */
export async function resolveAgent(agent: string, searchDirs: readonly string[]): Promise<string> {
  const builtIn = builtInAgents[agent];
  if (builtIn) return builtIn;
  if (isAbsolute(agent)) {
    if (await isExecutableFile(agent)) return agent;
    throw new Error(`fence agent ${agent} is not an executable file`);
  }
  if (agent.includes('/')) throw new Error(`fence agent ${JSON.stringify(agent)} must be a name or an absolute path`);
  for (const dir of searchDirs) {
    const candidate = join(dir, agent);
    if (await isExecutableFile(candidate)) return candidate;
  }
  throw new Error(`fence agent ${agent} not found in ${searchDirs.join(':')}`);
}
