import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import {
  type BackupRecord,
  backupCodec,
  Catalog,
  type Etcd3,
  EventLog,
  eventCodec,
  json,
  PrefixMirror,
  type PrimaryRecord,
  readPrefix,
  readRecord,
  waitFor,
} from '@service-foundry/core';
import {
  silentLogger,
  startTestEtcd,
  type TestEtcd,
  tempDirFor,
  uniqueId,
  uniqueKeyspace,
} from '@service-foundry/test-support';
import { BackupRunner, type BackupStore, DirectoryBackupStore } from '../src/backups/index.js';
import { DockerRuntime } from '../src/docker-runtime.js';
import { listOrNothing, readTree, startTestReplica, type TestReplica, writeTree } from './backup-helpers.js';
import { ensureTestImage, type TestService, writeTestCatalog } from './helpers.js';

const hookDir = 'sf-backup';

/** The data the tests back up lives in `db/` of the volume; the hook copies that folder, as a service's dump would. */
const files = {
  'db/base/big.bin': randomBytes(24 * 1024 * 1024),
  'db/base/small.bin': randomBytes(4096),
  'db/conf/service.conf': 'listen = 8080\nmax_connections = 10\n',
  'db/empty': '',
};
const writtenBytes = Object.values(files).reduce((sum, content) => sum + Buffer.byteLength(content), 0);

function requested(instanceId: string, backupId: string, serviceName: string): BackupRecord {
  return {
    id: backupId,
    instanceId,
    instanceName: `name-${instanceId}`,
    serviceName,
    planName: 'tiny',
    state: 'requested',
    message: 'waiting for the agent of the primary',
    requestedBy: 'test',
    requestedAt: new Date().toISOString(),
  };
}

describe('backups taken by the agent of the primary', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let image: string;
  let withHook: TestService;
  let withoutHook: TestService;
  let failingHook: TestService;
  let symlinkHook: TestService;
  const docker = new DockerRuntime('/var/run/docker.sock');

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
    image = await ensureTestImage();
    const copy = `mkdir -p {{path}} && cp -a /data/db {{path}}/`;
    withHook = await writeTestCatalog(image, { backup: { prepare: ['/bin/busybox', 'sh', '-c', copy], dir: hookDir } });
    withoutHook = await writeTestCatalog(image);
    const failing = `mkdir -p {{path}} && echo half > {{path}}/half && echo 'cannot freeze the data files' >&2 && exit 3`;
    // A hook that leaves a symlink: on the host, `/etc` would be the host's own /etc.
    const link = ['/bin/busybox', 'ln', '-s', '/etc', '{{path}}'];
    symlinkHook = await writeTestCatalog(image, { backup: { prepare: link, dir: hookDir } });
    failingHook = await writeTestCatalog(image, {
      backup: { prepare: ['/bin/busybox', 'sh', '-c', failing], dir: hookDir },
    });
  });
  after(async () => {
    await etcd.stop();
    for (const service of [withHook, withoutHook, failingHook, symlinkHook]) {
      await rm(service.catalogDir, { recursive: true, force: true });
    }
  });

  /** A keyspace, node names, ids and a store of its own for one test. */
  async function scenario(t: TestContext) {
    const keys = uniqueKeyspace('bk');
    const node = uniqueId('node-a');
    const clusterId = uniqueId('cl');
    const instanceId = uniqueId('inst');
    const backupId = uniqueId('b');
    const storeRoot = await tempDirFor(t, 'sf-backup-store');
    const store = new DirectoryBackupStore({ root: storeRoot });

    const startRunner = async (service: TestService, runnerNode = node, runnerStore: BackupStore = store) => {
      const runner = new BackupRunner({
        client,
        keys,
        docker,
        catalog: await Catalog.load(service.catalogDir),
        node: runnerNode,
        clusterId,
        events: new EventLog(client, keys, `agent/${runnerNode}`),
        log: silentLogger(),
        store: runnerStore,
        hookTimeoutMs: 20_000,
        fsync: true,
        rescanIntervalMs: 500,
      });
      await runner.start();
      t.after(() => runner.stop());
      return runner;
    };
    const startReplica = async (service: TestService): Promise<TestReplica> => {
      const replica = await startTestReplica({
        clusterId,
        node,
        instanceId,
        ordinal: 0,
        image,
        volumePath: service.volumePath,
      });
      t.after(() => replica.remove());
      return replica;
    };
    const putPrimary = async (primaryNode: string) => {
      const record: PrimaryRecord = {
        instanceId,
        ordinal: 0,
        node: primaryNode,
        host: '127.0.0.1',
        port: 8080,
        electedAt: new Date().toISOString(),
      };
      await client.put(keys.primary(instanceId)).value(json(record));
    };
    const putBackup = async (record: BackupRecord) => {
      await client.put(keys.backup(record.instanceId, record.id)).value(json(record));
    };
    /** Waits for `state`; a backup that settles in the other final state fails at once, with its message. */
    const backupWhere = async (id: string, state: BackupRecord['state'], timeoutMs = 60_000) => {
      const settled = await waitFor(
        async () => {
          const current = (await readRecord(client, backupCodec, keys.backup(instanceId, id)))?.value;
          const final = current?.state === state || current?.state === 'completed' || current?.state === 'failed';
          return final ? current : undefined;
        },
        { description: `backup ${id} ${state}`, timeoutMs },
      );
      assert.equal(settled.state, state, `backup ${id} ended ${settled.state}: ${settled.message}`);
      return settled;
    };
    // The runner writes a backup's event just after its record: wait for the first one.
    const eventsOf = (kind: string) =>
      waitFor(
        async () => {
          const found = [...(await readPrefix(client, eventCodec, keys.events())).items.values()]
            .map((item) => item.value)
            .filter((event) => event.kind === kind && event.instanceId === instanceId);
          return found.length > 0 ? found : undefined;
        },
        { description: `a ${kind} event`, timeoutMs: 15_000 },
      );
    return {
      keys,
      node,
      instanceId,
      backupId,
      store,
      storeRoot,
      startRunner,
      startReplica,
      putPrimary,
      putBackup,
      backupWhere,
      eventsOf,
    };
  }

  test('copies what the hook prepared into the store, removes the hook folder; another node leaves it alone', async (t) => {
    const s = await scenario(t);
    const replica = await s.startReplica(withHook);
    await writeTree(replica.mountpoint, files);
    await s.putPrimary(s.node);
    await s.putBackup(requested(s.instanceId, s.backupId, withHook.name));
    const asRequested = await readRecord(client, backupCodec, s.keys.backup(s.instanceId, s.backupId));
    assert.ok(asRequested);

    // Every version of the record, so a write by the other node's runner could not go unseen.
    const versions: BackupRecord[] = [];
    const history = new PrefixMirror(client, backupCodec, s.keys.backup(s.instanceId, s.backupId), silentLogger());
    history.on('change', (changes) => {
      for (const change of changes) if (change.current) versions.push(change.current.value);
    });
    await history.start();
    t.after(() => history.close());

    // The runner of another node sees the request, and declines it: the primary is not on its node.
    const otherRoot = await tempDirFor(t, 'sf-backup-store-other');
    const otherNode = uniqueId('node-b');
    const other = await s.startRunner(withHook, otherNode, new DirectoryBackupStore({ root: otherRoot }));
    await other.idle();
    const untouched = await readRecord(client, backupCodec, s.keys.backup(s.instanceId, s.backupId));
    assert.equal(untouched?.modRevision, asRequested.modRevision);

    const startedAt = Date.now();
    await s.startRunner(withHook);
    const done = await s.backupWhere(s.backupId, 'completed');
    t.diagnostic(`backup of ${writtenBytes} bytes completed in ${Date.now() - startedAt} ms`);

    assert.equal(done.node, s.node);
    assert.equal(done.ordinal, 0);
    assert.equal(done.method, 'hook');
    assert.equal(done.progress, undefined);
    assert.equal(done.figures?.bytes, writtenBytes);
    assert.equal(done.figures?.files, Object.keys(files).length);
    assert.match(done.message, /^completed: \d+\.\d MB, 4 files in \d+\.\d s$/);
    assert.ok(done.startedAt && done.completedAt && done.startedAt <= done.completedAt);

    const tree = await s.store.completedDir(s.instanceId, s.backupId);
    assert.ok(tree, 'the store holds a completed backup');
    const stored = await readTree(tree);
    assert.deepEqual([...stored.keys()].sort(), Object.keys(files).sort());
    for (const [path, content] of Object.entries(files)) {
      assert.ok(stored.get(path)?.equals(Buffer.from(content)), `${path} has the content written`);
    }
    const [listed] = await s.store.list(s.instanceId);
    assert.equal(listed?.backupId, s.backupId);
    assert.equal(listed?.serviceName, withHook.name);
    assert.deepEqual(listed?.figures, done.figures);

    assert.deepEqual(await listOrNothing(join(replica.mountpoint, hookDir)), []);
    assert.ok(
      !(await listOrNothing(replica.mountpoint)).includes(hookDir),
      'the hook folder is removed from the volume',
    );

    const [event] = await s.eventsOf('backup-completed');
    assert.ok(event, 'a backup-completed event');
    assert.match(event.message, new RegExp(`${s.backupId}.*MB.*4 files.*MB/s on ${s.node}`));

    assert.ok(versions.length >= 3, 'requested, running and completed were seen');
    for (const version of versions) {
      if (version.state !== 'requested') assert.equal(version.node, s.node, `${version.state} written by ${s.node}`);
      // Progress (written at most every 500 ms, so a fast copy may show none) only while running.
      if (version.progress) {
        assert.equal(version.state, 'running');
        assert.ok(version.progress.bytes <= writtenBytes);
      }
    }
    t.diagnostic(`progress versions seen: ${versions.filter((v) => v.progress).length}`);
    assert.deepEqual(await listOrNothing(otherRoot), [], "the other node's store is empty");
  });

  test('a service without a backup hook: the backup fails saying so, the store stays empty', async (t) => {
    const s = await scenario(t);
    await s.putPrimary(s.node);
    await s.putBackup(requested(s.instanceId, s.backupId, withoutHook.name));
    await s.startRunner(withoutHook);

    const failed = await s.backupWhere(s.backupId, 'failed');
    assert.equal(failed.message, `service ${withoutHook.name} declares no backup hook`);
    assert.equal(failed.node, s.node);
    assert.equal(await s.store.completedDir(s.instanceId, s.backupId), undefined);
    assert.deepEqual(await s.store.list(s.instanceId), []);
    assert.deepEqual(await listOrNothing(join(s.storeRoot, s.instanceId)), []);
    assert.equal((await s.eventsOf('backup-failed')).length, 1);
  });

  test('a hook that exits 3: failed with its stderr, nothing left in the store or the volume', async (t) => {
    const s = await scenario(t);
    const replica = await s.startReplica(failingHook);
    await writeTree(replica.mountpoint, files);
    await s.putPrimary(s.node);
    await s.putBackup(requested(s.instanceId, s.backupId, failingHook.name));
    await s.startRunner(failingHook);

    const failed = await s.backupWhere(s.backupId, 'failed');
    assert.match(failed.message, /exited with code 3: cannot freeze the data files$/);
    assert.equal(await s.store.completedDir(s.instanceId, s.backupId), undefined);
    assert.deepEqual(await listOrNothing(join(s.storeRoot, s.instanceId)), []);
    assert.ok(!(await listOrNothing(replica.mountpoint)).includes(hookDir), 'the half-written hook folder is removed');
    const data = await readTree(join(replica.mountpoint, 'db'));
    assert.equal(data.size, Object.keys(files).length, "the service's own data is untouched");
    const [event] = await s.eventsOf('backup-failed');
    assert.match(event?.message ?? '', /cannot freeze the data files/);
  });

  test('a hook that leaves a symlink instead of a folder: refused, nothing read through it', async (t) => {
    const s = await scenario(t);
    const replica = await s.startReplica(symlinkHook);
    await writeTree(replica.mountpoint, files);
    await s.putPrimary(s.node);
    await s.putBackup(requested(s.instanceId, s.backupId, symlinkHook.name));
    await s.startRunner(symlinkHook);

    const failed = await s.backupWhere(s.backupId, 'failed');
    assert.equal(failed.message, `the backup hook left ${hookDir} as a symlink, not a folder`);
    assert.deepEqual(await listOrNothing(join(s.storeRoot, s.instanceId)), []);
    assert.ok(!(await listOrNothing(replica.mountpoint)).includes(hookDir), 'the link is removed');
    assert.ok((await listOrNothing('/etc')).length > 0, 'what the link pointed at is untouched');
  });

  test('a backup still running on this node when its agent starts is marked failed and its partial copy removed', async (t) => {
    const s = await scenario(t);
    const running = (id: string, node: string): BackupRecord => ({
      ...requested(s.instanceId, id, withHook.name),
      state: 'running',
      node,
      ordinal: 0,
      method: 'hook',
      startedAt: new Date().toISOString(),
      message: `taking the backup on ${node}`,
    });
    await s.putBackup(running(s.backupId, s.node));
    const elsewhereId = uniqueId('b');
    await s.putBackup(running(elsewhereId, 'some-other-node'));
    const elsewhere = await readRecord(client, backupCodec, s.keys.backup(s.instanceId, elsewhereId));
    // What the interrupted run had copied so far.
    await writeTree(await s.store.destination(s.instanceId, s.backupId), { 'db/partial': 'half a file' });

    await s.startRunner(withHook);
    const failed = await s.backupWhere(s.backupId, 'failed', 10_000);
    assert.equal(failed.message, `the agent on ${s.node} restarted during the backup`);
    assert.deepEqual(await listOrNothing(join(s.storeRoot, s.instanceId)), []);
    const other = await readRecord(client, backupCodec, s.keys.backup(s.instanceId, elsewhereId));
    assert.equal(other?.modRevision, elsewhere?.modRevision, "another node's running backup is not touched");
  });
});
