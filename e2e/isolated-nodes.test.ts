import assert from 'node:assert/strict';
import { readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { makeTempDir, type TempDir } from '@service-foundry/test-support';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { containersOf, docker } from '@service-foundry/test-support/docker';
import { psql } from '@service-foundry/test-support/psql';

interface Detail {
  id: string;
  phase: string;
  primary?: { node: string; epoch: number } | null;
  replicaDetails: Array<{ ordinal: number; node: string; state: string; host: string | null; port: number | null }>;
}

interface StatusJson {
  nodeRuntime: string;
  nodeSegment?: string;
  isolatedNodes?: Array<{
    node: string;
    address: string;
    power: string;
    link: string;
    dockerd?: number;
    agent?: { pid: number };
  }>;
}

/** The network namespace a process lives in, as `net:[inode]`. */
async function netnsOf(pid: number): Promise<string> {
  return readlink(`/proc/${pid}/ns/net`);
}

/** Runs a query as postgres inside a replica's container (on its node's own engine). */
async function asPostgres(containerId: string, sql: string): Promise<string> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: ['psql', '-X', '-A', '-t', '-q', '-U', 'postgres', '-d', 'postgres', '-c', sql],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((resolve) => stream.on('end', resolve));
  // Docker multiplexes stdout and stderr in 8-byte framed chunks: keep the payloads.
  const raw = Buffer.concat(chunks);
  let text = '';
  for (let i = 0; i + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(i + 4);
    text += raw.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return text.trim();
}

/**
 * `sf up` on a machine that allows it: every node its own network namespace, dockerd and
 * agent, reached only over its own address — the one-machine cluster as separate hosts.
 */
describe('isolated nodes: each node a host in miniature', () => {
  let cluster: TestCluster;
  let uri = '';
  let tmp: TempDir;
  const detail = async (): Promise<Detail> => cluster.sfJson<Detail>('service', 'iso-db', '--json');

  before(async () => {
    tmp = await makeTempDir('sf-e2e-isolated');
    cluster = await startCluster(3);
    const created = await cluster.sf('create-service', 'postgres', 'ha-small', 'iso-db');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', 'iso-db', 'app', '--json');
    assert.equal(key.code, 0, key.stderr);
    const creds = JSON.parse(key.stdout) as { uri: string; ca_certificate?: string };
    uri = creds.uri;
    if (creds.ca_certificate) {
      const caFile = join(tmp.path, 'ca.crt');
      await writeFile(caFile, creds.ca_certificate);
      uri = `${uri}${uri.includes('?') ? '&' : '?'}sslrootcert=${caFile}`;
    }
  });
  after(async () => {
    await cluster?.destroy();
    await tmp?.remove();
  });

  it('sf up chose isolated nodes: each agent and dockerd runs inside its own node’s namespace', async () => {
    const status = JSON.parse((await cluster.sf('status', '--json')).stdout) as StatusJson;
    assert.equal(status.nodeRuntime, 'isolated');
    const runtime = cluster.nodes;
    assert.ok(runtime, 'the test cluster has a node runtime');
    assert.equal(status.nodeSegment, runtime.addressing.segment);
    assert.equal(status.isolatedNodes?.length, 3);
    const namespaces = new Set<string>();
    for (const node of status.isolatedNodes ?? []) {
      assert.equal(node.power, 'on');
      assert.equal(node.link, 'up');
      assert.ok(node.agent && node.dockerd, `${node.node} runs its agent and its dockerd`);
      const own: string = `net:[${(await stat(`/run/netns/${runtime.node(node.node).netns}`)).ino}]`;
      assert.equal(await netnsOf(node.agent.pid), own, `${node.node}'s agent is in its namespace`);
      assert.equal(await netnsOf(node.dockerd), own, `${node.node}'s dockerd is in its namespace`);
      namespaces.add(own);
    }
    assert.equal(namespaces.size, 3, 'three namespaces');
    assert.notEqual([...namespaces][0], await netnsOf(process.pid), 'none is this machine’s');
    const nodes = JSON.parse((await cluster.sf('nodes', '--json')).stdout) as Array<{ name: string; address: string }>;
    for (const node of nodes) assert.equal(node.address, runtime.node(node.name).address);
  });

  it('replicas are reached at node addresses: the router’s targets and the standbys’ streams', async () => {
    const runtime = cluster.nodes;
    assert.ok(runtime);
    const now = await detail();
    assert.equal(now.replicaDetails.filter((r) => r.state === 'running').length, 3);
    for (const replica of now.replicaDetails) {
      assert.equal(
        replica.host,
        runtime.node(replica.node).address,
        `replica ${replica.ordinal} on its node's address`,
      );
      assert.ok((replica.port ?? 0) > 0);
    }
    const primaryNode = now.primary?.node;
    assert.ok(primaryNode);
    const container = (await containersOf(now.id)).find((c) => c.Labels['sf.node'] === primaryNode);
    assert.ok(container, 'the primary’s container, found on its node’s own engine');
    const standbys = ['node-1', 'node-2', 'node-3'].filter((n) => n !== primaryNode);
    const expected = standbys.map((n) => runtime.node(n).address).sort();
    // Each standby streams from the primary's node address: its connection arrives from its
    // own node's address (masqueraded out of its node), never from a container address.
    const clients = await waitFor(
      async () => {
        const out = await asPostgres(container.Id, 'SELECT client_addr FROM pg_stat_replication ORDER BY 1');
        const addresses = out.split('\n').filter(Boolean).sort();
        return addresses.length === 2 ? addresses : undefined;
      },
      { description: 'two standbys streaming', timeoutMs: 90_000, intervalMs: 1000 },
    );
    assert.deepEqual(clients, expected);
    const res = await psql(uri, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (7); SELECT x FROM kept');
    assert.equal(res.out, '7', res.err);
  });

  it('sf down removes the namespaces, the link and the dockerds but keeps the data; sf up brings it back', async () => {
    const runtime = cluster.nodes;
    assert.ok(runtime);
    const down = await cluster.sf('down');
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assert.deepEqual(await runtime.leftovers(), [], 'no namespace, link, node process or mount is left');
    const up = await cluster.sf('up');
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /Nodes: isolated, as this cluster was set up/);
    await waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas again',
      timeoutMs: 180_000,
      intervalMs: 1000,
    });
    const res = await waitFor(
      async () => {
        const r = await psql(uri, 'SELECT x FROM kept');
        return r.ok ? r : undefined;
      },
      { description: 'the row written before sf down', timeoutMs: 60_000, intervalMs: 1000 },
    );
    assert.equal(res.out, '7');
  });
});
