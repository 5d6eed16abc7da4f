import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { psql } from '@service-foundry/test-support/psql';

describe('the sf CLI drives the platform end to end', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(2, { sharedEngine: true });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('shows the marketplace and the nodes', async () => {
    const market = await cluster.sf('marketplace', '--json');
    assert.equal(market.code, 0, market.stderr);
    assert.ok((JSON.parse(market.stdout) as Array<{ name: string }>).some((s) => s.name === 'postgres'));
    const nodes = await cluster.sf('nodes', '--json');
    assert.deepEqual((JSON.parse(nodes.stdout) as Array<{ name: string }>).map((n) => n.name).sort(), [
      'node-1',
      'node-2',
    ]);
    const status = await cluster.sf('status');
    assert.equal(status.code, 0, status.stdout + status.stderr);
  });

  it('create-service, create-service-key, psql, service-key, delete-service', async () => {
    const created = await cluster.sf('create-service', 'postgres', 'small', 'cli-db');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const listed = JSON.parse((await cluster.sf('services', '--json')).stdout) as Array<{
      name: string;
      phase: string;
    }>;
    assert.deepEqual(
      listed.map((i) => [i.name, i.phase]),
      [['cli-db', 'ready']],
    );
    const key = await cluster.sf('create-service-key', 'cli-db', 'k1', '--json');
    assert.equal(key.code, 0, key.stderr);
    const creds = JSON.parse(key.stdout) as { uri: string };
    const res = await psql(creds.uri, 'CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT x FROM t');
    assert.equal(res.out, '42', res.err);
    const shown = JSON.parse((await cluster.sf('service-key', 'cli-db', 'k1', '--json')).stdout) as { uri: string };
    assert.equal(shown.uri, creds.uri);
    const detail = await cluster.sf('service', 'cli-db');
    assert.match(detail.stdout, /state:\s+ready/);
    assert.match(detail.stdout, /keys:\s+k1/);
    // IO settings change live, on every replica, through an OSB update.
    const updated = await cluster.sf('update-service', 'cli-db', '-c', '{"local_io":"batched"}');
    assert.equal(updated.code, 0, updated.stdout + updated.stderr);
    const io = JSON.parse((await cluster.sf('service', 'cli-db', '--json')).stdout) as {
      io: { localIo: string };
      replicaDetails: Array<{ io: { localIo: string } | null }>;
    };
    assert.equal(io.io.localIo, 'batched');
    assert.deepEqual(
      io.replicaDetails.map((r) => r.io?.localIo),
      ['batched'],
    );
    const refused = await cluster.sf('update-service', 'cli-db', '-c', '{"replicas":3}');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /unknown field "replicas"/);
    const deleted = await cluster.sf('delete-service', 'cli-db');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(JSON.parse((await cluster.sf('services', '--json')).stdout), []);
  });

  it('rejects bad command lines with a usage error and exit code 2', async () => {
    const missing = await cluster.sf('create-service', 'postgres');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /usage: sf create-service SERVICE PLAN NAME/);
    const badJson = await cluster.sf('create-service', 'postgres', 'small', 'x', '-c', '{nope');
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /-c must be a JSON object/);
    const unknownPlan = await cluster.sf('create-service', 'postgres', 'huge', 'x');
    assert.equal(unknownPlan.code, 2);
    assert.match(unknownPlan.stderr, /has no plan "huge"; plans: small/);
    const unknownCommand = await cluster.sf('frobnicate');
    assert.equal(unknownCommand.code, 2);
  });
});
