import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { containersOf, docker } from '@service-foundry/test-support/docker';
import { psql } from '@service-foundry/test-support/psql';
import { redisCli } from '@service-foundry/test-support/redis-cli';

interface Detail {
  id: string;
  primary: { node: string } | null;
}

interface Key {
  host: string;
  port: number;
  username: string;
  password: string;
  uri: string;
  tls: boolean;
  ca_certificate: string;
}

/** Runs `cmd` in a container as its user; stdout and stderr together. */
async function execIn(id: string, cmd: string[]): Promise<string> {
  const exec = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.on('end', resolve));
  // Docker multiplexes stdout and stderr in frames: an 8-byte header (stream, size) each.
  const raw = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let at = 0; at + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(at + 4);
    out.push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(out).toString().trim();
}

/**
 * Security in flight on a whole platform (`sf up`, three nodes): replication between nodes
 * and app sessions through the router are TLS with certificates of the cluster CA, and a
 * service key carries what an app needs to verify the server (docs/security.md "In flight").
 */
describe('TLS between nodes and end to end through the router', () => {
  let cluster: TestCluster;
  let ca: string;
  const detail = async (name: string): Promise<Detail> => cluster.sfJson<Detail>('service', name, '--json');
  const keyOf = async (name: string): Promise<Key> => {
    const key = await cluster.sf('create-service-key', name, 'k1', '--json');
    assert.equal(key.code, 0, key.stderr);
    return JSON.parse(key.stdout) as Key;
  };

  before(async () => {
    cluster = await startCluster(3, { oneSchedulerOneBroker: true });
    ca = await readFile(join(cluster.home, 'pki', 'ca.crt'), 'utf8');
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('Postgres ha-small: both standbys stream over TLS; a key verifies the server through the router', async () => {
    const created = await cluster.sf('create-service', 'postgres', 'ha-small', 'tlsdb');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await keyOf('tlsdb');
    // Both routers, the read-write server asked for, and the server verified by name.
    assert.match(
      key.uri,
      /@127\.0\.0\.1:\d+,127\.0\.0\.2:\d+\/sf\?target_session_attrs=read-write&sslmode=verify-full$/,
    );
    assert.equal(key.tls, true);
    assert.equal(key.ca_certificate, ca);
    // psql as an app runs it: verify-full against the CA of the key (PGSSLROOTCERT).
    const session = await psql(
      key.uri,
      // SET ROLE NONE: as the key's own login (a session working as sf_app sees no other role's row).
      'SET ROLE NONE; SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()',
    );
    assert.ok(session.ok, session.err);
    assert.equal(session.out, 't');
    const plain = await psql(key.uri.replace('sslmode=verify-full', 'sslmode=disable'), 'SELECT 1');
    assert.equal(plain.ok, false);
    assert.match(plain.err, /no pg_hba\.conf entry .* no encryption/);

    const { id, primary } = await detail('tlsdb');
    assert.ok(primary);
    const container = (await containersOf(id)).find(
      (c) => c.Labels['sf.node'] === primary.node && c.State === 'running',
    );
    assert.ok(container, 'the primary container');
    const streams = await waitFor(
      async () => {
        const out = await execIn(container.Id, [
          ...['psql', '-X', '-A', '-t', '-U', 'postgres', '-d', 'sf', '-c'],
          "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'",
        ]);
        return out === '2/2' ? out : undefined;
      },
      { description: 'two standbys streaming over TLS', timeoutMs: 120_000, intervalMs: 1000 },
    );
    assert.equal(streams, '2/2');
  });

  it('Redis ha-small: replicas link over TLS only; a rediss key with the CA', async () => {
    const created = await cluster.sf('create-service', 'redis', 'ha-small', 'tlscache');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await keyOf('tlscache');
    assert.match(key.uri, /^rediss:\/\//);
    assert.equal(key.ca_certificate, ca);
    assert.equal(await redisCli(key, 'SET', 'k', 'v'), 'OK');
    assert.equal(await redisCli(key, 'WAIT', '2', '10000'), '2', 'both replicas acknowledge: their links are up');
    // The links that are up can only be TLS: no server has a plaintext TCP port.
    const { id } = await detail('tlscache');
    for (const container of await containersOf(id)) {
      const port = await execIn(container.Id, [
        'sh',
        '-c',
        'REDISCLI_AUTH=$(cat "$REDIS_ADMIN_PASSWORD_FILE") redis-cli --no-auth-warning --user "$SF_ADMIN_USER" -s /run/redis/redis.sock CONFIG GET port',
      ]);
      assert.equal(port.split('\n').at(-1), '0', `${container.Names[0]} has no plaintext port`);
    }
  });
});
