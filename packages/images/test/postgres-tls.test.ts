import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Catalog, type CatalogEntry, freePort, json, type RouteRecord, waitFor } from '@service-foundry/core';
import { startRouter } from '@service-foundry/router';
import { silentLogger, startTestEtcd } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import type Dockerode from 'dockerode';
import { ensureServiceImage } from '../src/index.js';
import { execIn } from './postgres-nodes.js';
import { createServiceContainer, type TestContainerTls } from './service-containers.js';

/**
 * TLS of the catalog's Postgres image, containers made the way the agent makes them: the
 * node's service certificate (naming the node's address and the router's host) from a CA
 * made like `sf up` makes one. Replication between two "nodes" goes through the Docker
 * network's gateway address and a published port, as standbys stream between isolated
 * nodes (`peerAddress: node`), so `sslmode=verify-full` applies; clients come through the
 * real router with `sslmode=verify-full`, as a binding's URI says.
 */

interface Run {
  code: number;
  out: string;
}

/** The host's psql on a libpq connection string; the password through PGPASSWORD. */
function psql(conninfo: string, password: string, sql: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      [conninfo, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, out: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

async function psqlOk(conninfo: string, password: string, sql: string): Promise<string> {
  const result = await psql(conninfo, password, sql);
  assert.equal(result.code, 0, `psql ${conninfo}: ${result.out}`);
  return result.out;
}

describe('postgres image: TLS for replication and clients', () => {
  const id = randomBytes(4).toString('hex');
  const network = `sf-pgtls-${id}`;
  const labels = { 'sf.test': 'postgres-tls', 'sf.test.run': id };
  const adminPassword = randomBytes(18).toString('base64url');
  const replicationPassword = randomBytes(18).toString('base64url');
  const containers: Dockerode.Container[] = [];
  const volumes: string[] = [];
  let entry: CatalogEntry;
  let gateway: string;
  let pki: TestPki;
  let otherCa: TestPki;

  before(async () => {
    const found = (await Catalog.load()).byServiceName('postgres');
    assert.ok(found?.replication);
    entry = found;
    await ensureServiceImage(entry, { docker, onProgress: () => {} });
    const created = await docker.createNetwork({ Name: network, Driver: 'bridge', Labels: labels });
    const ipam = (await created.inspect()).IPAM?.Config?.[0];
    assert.ok(ipam?.Gateway, `network ${network} has a gateway`);
    gateway = ipam.Gateway;
    // The "node" is the gateway address: its published ports are what a peer node dials.
    pki = await makeTestPki([{ name: 'pg-node', address: gateway }], { routerHosts: ['127.0.0.1'] });
    otherCa = await makeTestPki([{ name: 'pg-node', address: gateway }], { routerHosts: ['127.0.0.1'] });
  });
  after(async () => {
    for (const container of containers) await container.remove({ force: true, v: true }).catch(() => {});
    for (const volume of volumes)
      await docker
        .getVolume(volume)
        .remove()
        .catch(() => {});
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => {});
    await pki?.remove();
    await otherCa?.remove();
  });

  interface Node {
    name: string;
    container: Dockerode.Container;
    /** Published on 127.0.0.1 (the host's clients, the router). */
    localPort: number;
    /** Published on the gateway address (where a peer node streams from). */
    nodePort: number;
  }

  async function start(
    suffix: string,
    options: { role: 'primary' | 'replica'; upstream?: { host: string; port: number }; env?: Record<string, string> },
    tls: TestContainerTls,
  ): Promise<Node> {
    const name = `sf-pgtls-${id}-${suffix}`;
    const recipe = entry.replication;
    assert.ok(recipe);
    const [localPort, nodePort] = [await freePort(), await freePort()];
    await docker.createVolume({ Name: name, Labels: labels });
    volumes.push(name);
    const env: Record<string, string> = {
      [recipe.env.role]: options.role,
      [recipe.env.replicationUser]: 'sf_replicator',
      [recipe.env.replicaName]: name.replaceAll('-', '_'),
      ...options.env,
    };
    if (options.upstream) {
      env[recipe.env.upstreamHost] = options.upstream.host;
      env[recipe.env.upstreamPort] = String(options.upstream.port);
    }
    const port = `${entry.runtime.port}/tcp`;
    const container = await createServiceContainer(
      docker,
      entry,
      { adminPassword, replicationPassword },
      {
        name,
        Labels: labels,
        ExposedPorts: { [port]: {} },
        HostConfig: {
          NetworkMode: network,
          PortBindings: {
            [port]: [
              { HostIp: '127.0.0.1', HostPort: String(localPort) },
              { HostIp: gateway, HostPort: String(nodePort) },
            ],
          },
          Mounts: [{ Type: 'volume', Source: name, Target: entry.runtime.volumePath }],
        },
      },
      env,
      tls,
    );
    containers.push(container);
    await container.start();
    return { name, container, localPort, nodePort };
  }

  async function ready(node: Node): Promise<void> {
    await waitFor(
      async () => {
        const state = (await node.container.inspect()).State;
        if (!state.Running) {
          const logs = (await node.container.logs({ stdout: true, stderr: true })).toString();
          assert.fail(`${node.name} exited ${state.ExitCode}:\n${logs.split('\n').slice(-15).join('\n')}`);
        }
        return (await execIn(docker, node.container, entry.runtime.readiness.exec)).code === 0;
      },
      { description: `${node.name} ready`, timeoutMs: entry.runtime.readiness.timeoutSeconds * 1000, intervalMs: 200 },
    );
  }

  const onNode = (peerAddress: 'node' | 'container', extra: { clients?: 'optional' } = {}): TestContainerTls => ({
    pki,
    node: 'pg-node',
    peerAddress,
    ...extra,
  });
  const local = (node: Node, tls: string) =>
    `host=127.0.0.1 port=${node.localPort} user=postgres dbname=sf ${tls}`.trim();
  const replicationLogin = (node: Node, tls: string) =>
    `host=127.0.0.1 port=${node.localPort} user=sf_replicator dbname=replication replication=true ${tls}`;

  let primary: Node;

  test('a standby streams over TLS, verify-full against the node address; plaintext replication is refused', async () => {
    primary = await start('p', { role: 'primary' }, onNode('node'));
    await ready(primary);
    const standby = await start(
      's',
      { role: 'replica', upstream: { host: gateway, port: primary.nodePort } },
      onNode('node'),
    );
    await ready(standby);
    const conninfo = await psqlOk(local(standby, 'sslmode=require'), adminPassword, 'SHOW primary_conninfo');
    assert.match(conninfo, /sslmode=verify-full sslrootcert=\/run\/sf-secrets\/tls-ca/);

    // pg_stat_ssl of the WAL sender: the stream itself is encrypted.
    const stream = await waitFor(
      async () => {
        const rows = await psqlOk(
          local(primary, 'sslmode=require'),
          adminPassword,
          "SELECT s.ssl || ' ' || s.version || ' ' || r.state FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
        );
        return rows.includes('streaming') ? rows : undefined;
      },
      { description: 'the standby streaming', timeoutMs: 60_000 },
    );
    assert.match(stream, /^true TLSv1\.[23] streaming$/);

    // The replication login without TLS: no pg_hba line lets it in. With TLS it may.
    const plain = await psql(replicationLogin(primary, 'sslmode=disable'), replicationPassword, 'IDENTIFY_SYSTEM');
    assert.notEqual(plain.code, 0);
    assert.match(plain.out, /no pg_hba\.conf entry for replication connection .* no encryption/);
    const verified = `sslmode=verify-ca sslrootcert=${pki.caFile}`;
    assert.match(await psqlOk(replicationLogin(primary, verified), replicationPassword, 'IDENTIFY_SYSTEM'), /\|/);
  });

  test('a standby refuses an upstream whose certificate does not name the address it dials (verify-full)', async () => {
    const primaryIp = (await primary.container.inspect()).NetworkSettings.Networks[network]?.IPAddress;
    assert.ok(primaryIp);
    // The container address is in no certificate: with verify-full the clone never starts.
    const strict = await start(
      'strict',
      { role: 'replica', upstream: { host: primaryIp, port: 5432 }, env: { SF_CLONE_TIMEOUT_S: '4' } },
      onNode('node'),
    );
    const exit = await waitFor(
      async () => {
        const state = (await strict.container.inspect()).State;
        return state.Running ? undefined : state;
      },
      { description: 'the strict standby giving up', timeoutMs: 60_000 },
    );
    assert.notEqual(exit.ExitCode, 0);
    const logs = (await strict.container.logs({ stdout: true, stderr: true })).toString();
    assert.match(logs, /server certificate for .* does not match host name/);
    // The shared-engine mode: streaming from container addresses, verify-ca (the cluster CA).
    const shared = await start(
      'shared',
      { role: 'replica', upstream: { host: primaryIp, port: 5432 } },
      onNode('container'),
    );
    await ready(shared);
    const conninfo = await psqlOk(local(shared, 'sslmode=require'), adminPassword, 'SHOW primary_conninfo');
    assert.match(conninfo, /sslmode=verify-ca/);
  });

  test('clients through the router: verify-full succeeds, another CA and plaintext fail', async (t) => {
    const etcd = await startTestEtcd();
    t.after(() => etcd.stop());
    const router = await startRouter(
      { etcdEndpoints: [etcd.endpoint], keyspaceRoot: etcd.keys.root, listenHost: '127.0.0.1' },
      { log: silentLogger() },
    );
    t.after(() => router.stop());
    const routerPort = await freePort();
    const route: RouteRecord = {
      instanceId: `pg-${id}`,
      protocol: 'tcp',
      port: routerPort,
      target: { host: '127.0.0.1', port: primary.localPort },
      epoch: 1,
    };
    await etcd.client.put(etcd.keys.route(route.instanceId)).value(json(route));
    const through = (tls: string) => `host=127.0.0.1 port=${routerPort} user=postgres dbname=sf ${tls}`;

    const verifyFull = `sslmode=verify-full sslrootcert=${pki.caFile}`;
    const seen = await waitFor(
      async () => {
        const result = await psql(
          through(verifyFull),
          adminPassword,
          'SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()',
        );
        return result.code === 0 ? result.out : undefined;
      },
      { description: 'psql verify-full through the router', timeoutMs: 15_000 },
    );
    assert.equal(seen, 't', 'the session through the router is TLS end to end');

    const wrongCa = await psql(through(`sslmode=verify-full sslrootcert=${otherCa.caFile}`), adminPassword, 'SELECT 1');
    assert.notEqual(wrongCa.code, 0);
    assert.match(wrongCa.out, /certificate verify failed/);
    const plain = await psql(through('sslmode=disable'), adminPassword, 'SELECT 1');
    assert.notEqual(plain.code, 0);
    assert.match(plain.out, /no pg_hba\.conf entry .* no encryption/);
  });

  test('a plan with tls optional accepts plaintext clients; replication stays TLS only', async () => {
    const node = await start('opt', { role: 'primary' }, onNode('node', { clients: 'optional' }));
    await ready(node);
    assert.equal(await psqlOk(local(node, 'sslmode=disable'), adminPassword, 'SELECT 1'), '1');
    const ssl = await psqlOk(
      local(node, `sslmode=verify-full sslrootcert=${pki.caFile}`),
      adminPassword,
      'SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()',
    );
    assert.equal(ssl, 't');
    const plain = await psql(replicationLogin(node, 'sslmode=disable'), replicationPassword, 'IDENTIFY_SYSTEM');
    assert.match(plain.out, /no pg_hba\.conf entry for replication connection .* no encryption/);
  });
});
