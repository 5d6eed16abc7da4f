import { after } from 'node:test';
import { loadContainerTls, replicaSecrets, secretFilesArchive } from '@service-foundry/agent';
import { type CatalogEntry, type ClientTlsMode, type InstanceSecret, planClientTls } from '@service-foundry/core';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import type Dockerode from 'dockerode';

/**
 * Containers of a catalog image made the way the agent makes them: the catalog's env, the
 * plan's connection limit, the passwords as files put into the created container (the
 * agent's own `replicaSecrets` and archive) before it starts, named by the `*_FILE`
 * variables, and, for an image with `runtime.tls`, the node's service certificate, its key
 * and the cluster CA the same way (`SF_TLS_*`), from a test CA made like `sf up` makes one.
 */

export interface ServiceSecrets {
  adminPassword: string;
  /** Only for containers that replicate (the recipe's replication password file). */
  replicationPassword?: string;
}

/** TLS of a test container; `false`: none, as when the image is run by hand. */
export type TestContainerTls =
  | false
  | {
      /** @default the test CA's node `node-a` */
      pki?: TestPki;
      node?: string;
      /** @default the plan's mode (`required` for every catalog plan) */
      clients?: ClientTlsMode;
      /** @default 'verify-ca' (standbys stream from container addresses on one Docker network) */
      peerAddress?: 'container' | 'node';
    };

/** The plan whose connection limit the tests' containers get, as the agent passes it. */
export const testPlan = 'small';

/** Paths of the secret files inside the container. */
export function secretPaths(entry: CatalogEntry): { admin: string; replication: string; ca: string } {
  const { dir } = entry.runtime.secretFiles;
  return { admin: `${dir}/admin-password`, replication: `${dir}/replication-password`, ca: `${dir}/tls-ca` };
}

let sharedPki: Promise<TestPki> | undefined;
// Registered when the test file imports this module, so it belongs to the file, not to
// whichever test happened to make the CA first.
after(async () => {
  await (await sharedPki)?.remove();
});

/**
 * The test CA every container of this test file gets its certificate from (node `node-a`
 * at 127.0.0.1, the "router" at 127.0.0.1: the host's clients dial the published ports
 * there). Made on first use, removed after the file's tests.
 */
export function testPki(): Promise<TestPki> {
  sharedPki ??= makeTestPki([{ name: 'node-a', address: '127.0.0.1' }], { routerHosts: ['127.0.0.1'] });
  return sharedPki;
}

/** redis-cli's options to reach a test container over TLS, checking it against the test CA. */
export async function redisCliTls(): Promise<string[]> {
  return ['--tls', '--cacert', (await testPki()).caFile];
}

/** The environment and files the agent gives a container: no variable holds a secret. */
async function agentSecrets(entry: CatalogEntry, secrets: ServiceSecrets, tls: TestContainerTls) {
  const secret: InstanceSecret = {
    adminUser: entry.runtime.adminUser,
    adminPassword: secrets.adminPassword,
    ...(secrets.replicationPassword !== undefined
      ? { replicationUser: 'replicator', replicationPassword: secrets.replicationPassword }
      : {}),
  };
  const replicationPasswordFileEnv =
    secrets.replicationPassword !== undefined ? entry.replication?.env.replicationPasswordFile : undefined;
  const options: NonNullable<Parameters<typeof replicaSecrets>[2]> = replicationPasswordFileEnv
    ? { replicationPasswordFileEnv }
    : {};
  const planTls = planClientTls(entry, testPlan);
  if (tls !== false && planTls !== 'none') {
    const pki = tls.pki ?? (await testPki());
    const material = await loadContainerTls(pki.serviceTls(tls.node ?? 'node-a'), tls.peerAddress ?? 'container');
    options.tls = { material, clients: tls.clients ?? planTls };
  }
  return replicaSecrets(entry.runtime, secret, options);
}

/**
 * Creates (does not start) a container of the entry's image with the agent's env plus
 * `env`, and puts the secret files in. `options` are Docker's, minus Image and Env. TLS as
 * the agent gives it unless `tls` says otherwise.
 */
export async function createServiceContainer(
  docker: Dockerode,
  entry: CatalogEntry,
  secrets: ServiceSecrets,
  options: Omit<Dockerode.ContainerCreateOptions, 'Image' | 'Env'>,
  env: Record<string, string> = {},
  tls: TestContainerTls = {},
): Promise<Dockerode.Container> {
  const made = await agentSecrets(entry, secrets, tls);
  const allEnv = {
    ...entry.runtime.env,
    ...made.env,
    SF_MAX_CONNECTIONS: String(entry.plans[testPlan]?.connections.service),
    ...env,
  };
  const container = await docker.createContainer({
    ...options,
    Image: entry.runtime.image,
    Env: Object.entries(allEnv).map(([key, value]) => `${key}=${value}`),
  });
  try {
    await container.putArchive(await secretFilesArchive(made.secretFiles), { path: '/' });
  } catch (error) {
    await container.remove({ force: true, v: true }).catch(() => {});
    throw error;
  }
  return container;
}
