import { randomBytes } from 'node:crypto';
import { loadContainerTls, replicaSecrets, secretFilesArchive } from '@service-foundry/agent';
import { Catalog, freePort, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import type Docker from 'dockerode';
import pg from 'pg';

/**
 * A real PostgreSQL from the catalog's own image (built by `sf images build`), published on
 * a loopback port and started the way the agent starts it (the admin password as a file,
 * the plan's connection limit), so the broker's binding driver runs the catalog's real
 * statements against the server users get (database `sf` owned by postgres, the app's
 * objects by the NOLOGIN role `sf_app`).
 */
export interface LocalPostgres {
  port: number;
  container: Docker.Container;
  /** Runs SQL as the superuser `postgres` in database `sf` (search_path pg_catalog, pg_temp: qualify app tables). */
  admin(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  setAdminPassword(password: string): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalPostgresOptions {
  /**
   * Serve TLS with this service certificate (its SAN must name 127.0.0.1), given to the
   * container as the agent gives it; clients must then use TLS. @default undefined (plaintext, as by hand)
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

export async function startLocalPostgres(port?: number, options: LocalPostgresOptions = {}): Promise<LocalPostgres> {
  const entry = (await Catalog.load()).byServiceName('postgres');
  if (!entry) throw new Error('no postgres entry in the services catalog');
  const listenPort = port ?? (await freePort());
  let adminPassword = randomBytes(12).toString('hex');
  const tls = options.tls ? await loadContainerTls(options.tls, 'node') : undefined;
  const made = replicaSecrets(
    entry.runtime,
    { adminUser: 'postgres', adminPassword },
    tls ? { tls: { material: tls, clients: 'required' } } : {},
  );
  const secretFiles = made.secretFiles;
  const env = {
    ...entry.runtime.env,
    ...made.env,
    SF_MAX_CONNECTIONS: String(entry.plans.small?.connections.service),
  };
  const container: Docker.Container = await docker.createContainer({
    name: uniqueId('sf-broker-test-pg'),
    Image: entry.runtime.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: { 'sf.test': 'broker' },
    HostConfig: {
      PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(listenPort) }] },
      // An anonymous volume, removed with the container (`v: true` below).
      Mounts: [{ Type: 'volume', Source: '', Target: entry.runtime.volumePath }],
    },
  });
  const stop = async () => {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  };
  const connect = async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: listenPort,
      user: 'postgres',
      password: adminPassword,
      database: 'sf',
      // Like the broker's admin session: nothing a binding user plants runs here.
      options: '-c search_path=pg_catalog,pg_temp',
      ...(tls ? { ssl: { ca: tls.ca } } : {}),
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  try {
    await container.putArchive(await secretFilesArchive(secretFiles), { path: '/' });
    await container.start();
    const probe = await waitFor(connect, { description: 'postgres container', timeoutMs: 60_000, intervalMs: 200 });
    await probe.end();
  } catch (error) {
    await stop();
    throw error;
  }
  const admin = async (sql: string, values?: unknown[]) => {
    const client = await connect();
    try {
      return await client.query(sql, values);
    } finally {
      await client.end();
    }
  };
  return {
    port: listenPort,
    container,
    admin,
    setAdminPassword: async (password) => {
      if (!/^[A-Za-z0-9]+$/.test(password)) throw new Error('unexpected password shape');
      await admin(`ALTER ROLE postgres PASSWORD '${password}'`);
      adminPassword = password;
    },
    stop,
  };
}
