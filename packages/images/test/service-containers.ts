import { secretFilesArchive } from '@service-foundry/agent';
import type { CatalogEntry } from '@service-foundry/core';
import type Dockerode from 'dockerode';

/**
 * Containers of a catalog image made the way the agent makes them: the catalog's env, the
 * plan's connection limit, and the passwords as files put into the created container
 * (the agent's own archive) before it starts, named by the `*_FILE` variables.
 */

export interface ServiceSecrets {
  adminPassword: string;
  /** Only for containers that replicate (the recipe's replication password file). */
  replicationPassword?: string;
}

/** The plan whose connection limit the tests' containers get, as the agent passes it. */
export const testPlan = 'small';

/** Paths of the secret files inside the container. */
export function secretPaths(entry: CatalogEntry): { admin: string; replication: string } {
  const { dir } = entry.runtime.secretFiles;
  return { admin: `${dir}/admin-password`, replication: `${dir}/replication-password` };
}

/** The environment the agent gives a container: no variable holds a secret. */
export function serviceEnv(
  entry: CatalogEntry,
  secrets: ServiceSecrets,
  extra: Record<string, string> = {},
): Record<string, string> {
  const paths = secretPaths(entry);
  const env: Record<string, string> = {
    ...entry.runtime.env,
    [entry.runtime.adminPasswordFileEnv]: paths.admin,
    SF_MAX_CONNECTIONS: String(entry.plans[testPlan]?.connections.service),
    ...extra,
  };
  if (secrets.replicationPassword !== undefined && entry.replication) {
    env[entry.replication.env.replicationPasswordFile] = paths.replication;
  }
  return env;
}

/** The agent's tar of the secret files, for `putArchive` at `/`. */
export function secretArchive(entry: CatalogEntry, secrets: ServiceSecrets): Promise<Buffer> {
  const files: Record<string, string> = { 'admin-password': secrets.adminPassword };
  if (secrets.replicationPassword !== undefined) files['replication-password'] = secrets.replicationPassword;
  return secretFilesArchive({ spec: entry.runtime.secretFiles, files });
}

/**
 * Creates (does not start) a container of the entry's image with `serviceEnv` plus `env`,
 * and puts the secret files in. `options` are Docker's, minus Image and Env.
 */
export async function createServiceContainer(
  docker: Dockerode,
  entry: CatalogEntry,
  secrets: ServiceSecrets,
  options: Omit<Dockerode.ContainerCreateOptions, 'Image' | 'Env'>,
  env: Record<string, string> = {},
): Promise<Dockerode.Container> {
  const container = await docker.createContainer({
    ...options,
    Image: entry.runtime.image,
    Env: Object.entries(serviceEnv(entry, secrets, env)).map(([key, value]) => `${key}=${value}`),
  });
  try {
    await container.putArchive(await secretArchive(entry, secrets), { path: '/' });
  } catch (error) {
    await container.remove({ force: true, v: true }).catch(() => {});
    throw error;
  }
  return container;
}
