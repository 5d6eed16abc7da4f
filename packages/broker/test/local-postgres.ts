import { randomBytes } from 'node:crypto';
import { Catalog, freePort, waitFor } from '@service-foundry/core';
import Docker from 'dockerode';
import pg from 'pg';

/**
 * A real PostgreSQL from the catalog's own image (built by `sf images build`), published on
 * a loopback port, so the broker's binding driver runs the catalog's real statements
 * against the server users get (database `sf` owned by the NOLOGIN role `sf_owner`).
 */
export interface LocalPostgres {
  port: number;
  /** Runs SQL as the superuser `postgres` in database `sf`. */
  admin(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  setAdminPassword(password: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalPostgres(port?: number): Promise<LocalPostgres> {
  const entry = (await Catalog.load()).byServiceName('postgres');
  if (!entry) throw new Error('no postgres entry in the services catalog');
  const docker = new Docker();
  const listenPort = port ?? (await freePort());
  let adminPassword = randomBytes(12).toString('hex');
  const container: Docker.Container = await docker.createContainer({
    name: `sf-broker-test-pg-${randomBytes(4).toString('hex')}`,
    Image: entry.runtime.image,
    Env: Object.entries({ ...entry.runtime.env, [entry.runtime.adminPasswordEnv]: adminPassword }).map(
      ([k, v]) => `${k}=${v}`,
    ),
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
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  try {
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
    admin,
    setAdminPassword: async (password) => {
      if (!/^[A-Za-z0-9]+$/.test(password)) throw new Error('unexpected password shape');
      await admin(`ALTER ROLE postgres PASSWORD '${password}'`);
      adminPassword = password;
    },
    stop,
  };
}
