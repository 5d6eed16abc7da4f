import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { clusterCaFile, perRouterUris } from '@service-foundry/test-support/cluster-ca';
import { psql } from '@service-foundry/test-support/psql';

const run = promisify(execFile);

interface Backup {
  id: string;
  state: string;
  node: string;
  method: string;
  figures?: { bytes: number; files: number };
}

async function keyOf(
  cluster: TestCluster,
  instance: string,
): Promise<{ uri: string; host: string; port: number; username: string; password: string }> {
  const key = await cluster.sf('create-service-key', instance, `k-${instance}`, '--json');
  assert.equal(key.code, 0, key.stdout + key.stderr);
  return JSON.parse(key.stdout);
}

describe("backups and restores, with the services' own consistent copies", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('backs up a Postgres while it runs and restores it as a new instance holding the data as of the backup', async () => {
    const created = await cluster.sf('create-service', 'postgres', 'small', 'books');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const original = await keyOf(cluster, 'books');
    const uri = original.uri;
    const seeded = await psql(
      uri,
      'CREATE TABLE pages (id int PRIMARY KEY, body text); INSERT INTO pages SELECT g, md5(g::text) FROM generate_series(1, 5000) g',
    );
    assert.ok(seeded.ok, seeded.err);

    const backup = await cluster.sf('backup', 'books');
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.match(backup.stdout + backup.stderr, /backup b-[0-9T-]+[0-9a-f]+ of books completed: .* on node-/);
    const later = await psql(uri, 'INSERT INTO pages SELECT g, md5(g::text) FROM generate_series(5001, 5100) g');
    assert.ok(later.ok, later.err);

    const listed = await cluster.sf('backups', 'books', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const backups = JSON.parse(listed.stdout) as Backup[];
    assert.equal(backups.length, 1);
    const [taken] = backups as [Backup];
    assert.equal(taken.state, 'completed');
    assert.equal(taken.method, 'hook');
    assert.ok((taken.figures?.bytes ?? 0) > 1_000_000, 'a whole data directory was copied');

    const restored = await cluster.sf('restore', 'books', taken.id, '--as', 'books-copy');
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.match(restored.stdout + restored.stderr, new RegExp(`restored backup ${taken.id} of books as books-copy`));
    // The copy holds the source's roles: the key that created the table reads it there,
    // through the copy's own route.
    const copy = await keyOf(cluster, 'books-copy');
    // One router's URI: WHATWG URLs cannot hold libpq's host list.
    const onCopy = new URL(perRouterUris(original.uri)[0] as string);
    onCopy.port = String(copy.port);
    const rows = await psql(onCopy.toString(), 'SELECT count(*), max(id) FROM pages');
    assert.ok(rows.ok, rows.err);
    assert.equal(rows.out, '5000\t5000', 'the copy holds the rows of the backup, not the later ones');
    const untouched = await psql(uri, 'SELECT count(*) FROM pages');
    assert.equal(untouched.out, '5100', 'the original is untouched');
    const writable = await psql(onCopy.toString(), "INSERT INTO pages VALUES (9999, 'new')");
    assert.ok(writable.ok, `the restored copy accepts writes: ${writable.err}`);

    // In place: the same instance goes back to the backup (the 100 later rows and the
    // row written on the copy are not there), under a new epoch, through the same route.
    const epochBefore = (await cluster.sfJson<{ primary: { epoch: number } }>('service', 'books', '--json')).primary
      .epoch;
    const inPlace = await cluster.sf('restore', 'books', taken.id);
    assert.equal(inPlace.code, 0, inPlace.stdout + inPlace.stderr);
    assert.match(inPlace.stdout, new RegExp(`restored backup ${taken.id} of books in place`));
    const back = await psql(uri, 'SELECT count(*), max(id) FROM pages');
    assert.ok(back.ok, back.err);
    assert.equal(back.out, '5000\t5000', 'the instance holds the rows of the backup again');
    const after = await cluster.sfJson<{
      primary: { epoch: number };
      operation: { state: string };
    }>('service', 'books', '--json');
    assert.ok(after.primary.epoch > epochBefore, 'a new epoch');
    assert.equal(after.operation.state, 'succeeded');
  });

  it('restores a three-replica Postgres in place: the primary gets the backup, the replicas are rebuilt from it', async () => {
    const created = await cluster.sf('create-service', 'postgres', 'ha-small', 'ledger');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const { uri } = await keyOf(cluster, 'ledger');
    assert.ok(
      (
        await psql(
          uri,
          'CREATE TABLE entries (id int PRIMARY KEY); INSERT INTO entries SELECT generate_series(1, 1000)',
        )
      ).ok,
    );
    const backup = await cluster.sf('backup', 'ledger');
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.ok((await psql(uri, 'INSERT INTO entries SELECT generate_series(1001, 1100)')).ok);
    const id = (JSON.parse((await cluster.sf('backups', 'ledger', '--json')).stdout) as Backup[])[0]?.id ?? '';
    const restored = await cluster.sf('restore', 'ledger', id);
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.equal((await psql(uri, 'SELECT count(*) FROM entries')).out, '1000');
    // The restore ends once the rebuilt replicas run again: remote-fsync commits, which wait
    // for a replica to have them, go through at once.
    const detail = await cluster.sfJson<{
      replicaDetails: Array<{ state: string; role: string | null }>;
    }>('service', 'ledger', '--json');
    assert.equal(detail.replicaDetails.filter((r) => r.state === 'running' && r.role === 'replica').length, 2);
    const write = await psql(uri, 'INSERT INTO entries VALUES (5000)');
    assert.ok(write.ok, write.err);
  });

  it('backs up a Redis and restores it as a new instance', async () => {
    const created = await cluster.sf('create-service', 'redis', 'small', 'cache');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await keyOf(cluster, 'cache');
    const cli = (k: typeof key, ...command: string[]) =>
      run(
        'redis-cli',
        [
          '-h',
          k.host,
          '-p',
          String(k.port),
          '--user',
          k.username,
          '--pass',
          k.password,
          '--no-auth-warning',
          // The key's TLS, checked against the cluster CA (its ca_certificate).
          ...['--tls', '--cacert', clusterCaFile() ?? ''],
          ...command,
        ],
        {
          timeout: 15_000,
        },
      ).then((r) => r.stdout.trim());
    assert.equal(await cli(key, 'SET', 'greeting', 'hello'), 'OK');
    const backup = await cluster.sf('backup', 'cache');
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.equal(await cli(key, 'SET', 'greeting', 'changed later'), 'OK');
    const id = (JSON.parse((await cluster.sf('backups', 'cache', '--json')).stdout) as Backup[])[0]?.id ?? '';
    const restored = await cluster.sf('restore', 'cache', id, '--as', 'cache-copy');
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    const copyKey = await keyOf(cluster, 'cache-copy');
    assert.equal(await cli(copyKey, 'GET', 'greeting'), 'hello');
    assert.equal(await cli(key, 'GET', 'greeting'), 'changed later');
  });
});
