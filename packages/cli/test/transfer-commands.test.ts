import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type BackupRecord,
  backupCodec,
  type Etcd3,
  type InstanceRecord,
  instanceCodec,
  json,
  type Keyspace,
  type PlacementRecord,
  type RecordCodec,
  type RelocationRecord,
  readPrefix,
  readRecord,
  relocationCodec,
  type TransferStatusRecord,
  waitFor,
} from '@service-foundry/core';
import { uniqueId, type WatchedProcess } from '@service-foundry/test-support';
import { operatorLogin, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type CliHarness, startCliHarness } from './helpers.js';

/**
 * The transfer commands against a real broker and etcd. The test plays the controller and
 * the agents: it writes the records they would write, one step at a time, and waits for
 * the CLI to show each step before taking the next.
 */
describe('cli: sf relocate, backup, backups, restore follow the work to its end', () => {
  let cli: CliHarness;
  let client: Etcd3;
  let keys: Keyspace;
  const id = uniqueId('pg');
  const sf = (...args: string[]): WatchedProcess => cli.sf(...args);
  const shows = (run: WatchedProcess, text: string) =>
    waitFor(() => run.stderr().includes(text) || run.stdout().includes(text), {
      description: `the CLI to show ${JSON.stringify(text)}`,
      timeoutMs: 15_000,
      intervalMs: 20,
    });
  const update = async <T>(codec: RecordCodec<T>, key: string, change: (current: T) => T) => {
    const current = await readRecord(client, codec, key);
    assert.ok(current, key);
    await client
      .put(key)
      .value(json(change(current.value)))
      .exec();
  };
  const now = () => new Date().toISOString();

  before(async () => {
    cli = await startCliHarness();
    ({ client, keys } = cli.h);
    // Made by an operator (the CLI's login reaches /v2 for its own instances): no platform scope.
    const res = await cli.h.call('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      auth: operatorLogin,
      body: { service_id: postgresServiceId, plan_id: smallPlanId, context: { instance_name: 'pg1' } },
    });
    assert.equal(res.status, 202, res.text);
    await update<InstanceRecord>(instanceCodec, keys.instance(id), (i) => ({
      ...i,
      phase: 'ready',
      message: 'primary on node-1',
    }));
    for (const node of ['node-1', 'node-2']) await cli.h.putNode(node, { address: '127.0.0.1' });
    const placement: PlacementRecord = {
      instanceId: id,
      ordinal: 0,
      node: 'node-1',
      placedAt: now(),
      scheduler: 'test',
    };
    await client.put(keys.placement(id, 0)).value(json(placement)).exec();
  });
  after(async () => {
    await cli?.close();
  });

  const transfer = (instanceId: string, node: string, bytes: number, message: string): TransferStatusRecord => ({
    instanceId,
    ordinal: 0,
    node,
    from: { node: 'node-1', volume: `replica.${instanceId}.0` },
    round: 1,
    state: 'copying',
    message,
    progress: {
      bytes,
      files: 1020,
      plannedBytes: 1_070_000_000,
      plannedFiles: 2048,
      elapsedMs: 2200,
      mbPerSecond: 231,
    },
    updatedAt: now(),
  });

  it('sf relocate prints each phase, the transfer progress and a summary with the downtime', async () => {
    const run = sf('relocate', 'pg1', '--to', 'node-2');
    await shows(run, 'Relocating pg1 replica 0 from node-1 to node-2');
    const key = keys.relocation(id, 0);
    const phase = (p: RelocationRecord['phase'], extra: Partial<RelocationRecord> = {}) =>
      update<RelocationRecord>(relocationCodec, key, (r) => ({
        ...r,
        phase: p,
        message: p,
        updatedAt: now(),
        ...extra,
      }));
    await shows(run, 'waiting for the controller');
    await phase('copying');
    await client
      .put(keys.transfer(id, 0, 'node-2'))
      .value(json(transfer(id, 'node-2', 512_000_000, 'pre-copy')))
      .exec();
    await shows(run, 'pre-copy [');
    await shows(run, '512.0 MB / 1.07 GB  48%  231 MB/s  1020/2048 files');
    const figures = { wireBytes: 0, files: 2048, deleted: 0 };
    await phase('stopping', {
      precopy: { ...figures, mode: 'full', bytes: 1_070_000_000, durationMs: 4600, mbPerSecond: 233 },
    });
    await shows(run, 'stopping the source on node-1');
    const copied = { ...transfer(id, 'node-2', 1_070_000_000, 'pre-copy'), state: 'copied' as const };
    await client
      .put(keys.transfer(id, 0, 'node-2'))
      .value(json(copied))
      .exec();
    await phase('final');
    await shows(run, 'copying the final delta');
    const delta = transfer(id, 'node-2', 5_300_000, 'final delta');
    const deltaProgress = { ...delta.progress, bytes: 5_300_000, plannedBytes: 10_600_000, files: 5, plannedFiles: 10 };
    await client
      .put(keys.transfer(id, 0, 'node-2'))
      .value(json({ ...delta, round: 2, progress: deltaProgress }))
      .exec();
    await shows(run, '5.30 MB / 10.6 MB  50%');
    await phase('switching', {
      final: { ...figures, mode: 'delta', bytes: 10_600_000, durationMs: 300, mbPerSecond: 35 },
    });
    await shows(run, 'switching to node-2');
    await phase('done', { downtimeMs: 840 });
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(
      run.stdout().trim().split('\n').at(-1),
      'relocated pg1 replica 0 from node-1 to node-2: pre-copy 1.07 GB in 4.6 s (233 MB/s), final delta 10.6 MB in 0.3 s, downtime 0.84 s',
    );
    const order = [
      'waiting for the controller',
      'copying replica 0 to node-2',
      'pre-copy [',
      'stopping',
      'final delta',
      'switching',
    ];
    const at = order.map((text) => run.stderr().indexOf(text));
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
      `phases in order:\n${run.stderr()}`,
    );

    const detail = sf('service', 'pg1');
    assert.equal((await detail.exited).code, 0, detail.stderr());
    assert.match(detail.stdout(), /last relocation: replica 0 node-1 → node-2: done — done$/m);
  });

  it('sf relocate exits 1 with the message of a failed relocation, and Ctrl-C leaves one running', async () => {
    const failing = sf('relocate', 'pg1', '--to', 'node-2');
    await shows(failing, 'waiting for the controller');
    await update<RelocationRecord>(relocationCodec, keys.relocation(id, 0), (r) => ({
      ...r,
      phase: 'failed',
      message: 'node-2 ran out of disk',
    }));
    assert.equal((await failing.exited).code, 1);
    assert.match(failing.stdout(), /relocation of pg1 replica 0 failed: node-2 ran out of disk/);

    const interrupted = sf('relocate', id);
    await shows(interrupted, 'waiting for the controller');
    interrupted.child.kill('SIGINT');
    assert.equal((await interrupted.exited).code, 130);
    assert.match(interrupted.stdout(), /the relocation keeps running/);
    const record = await readRecord(client, relocationCodec, keys.relocation(id, 0));
    assert.equal(record?.value.phase, 'requested', 'the request stays for the controller');
    await update<RelocationRecord>(relocationCodec, keys.relocation(id, 0), (r) => ({ ...r, phase: 'done' }));
  });

  it('sf backup follows the agent to a summary; sf backups lists it', async () => {
    const run = sf('backup', 'pg1');
    await shows(run, 'Backing up pg1 as b-');
    const [listed] = [...(await readPrefix(client, backupCodec, keys.instanceBackups(id))).items.values()];
    assert.ok(listed);
    const key = listed.key;
    await shows(run, 'waiting for the agent of the primary');
    const progress = {
      bytes: 24_100_000,
      files: 600,
      plannedBytes: 48_200_000,
      plannedFiles: 1203,
      elapsedMs: 600,
      mbPerSecond: 40,
    };
    await update<BackupRecord>(backupCodec, key, (b) => ({
      ...b,
      state: 'running',
      node: 'node-1',
      ordinal: 0,
      method: 'stopped',
      startedAt: now(),
      progress,
    }));
    await shows(run, 'taking the backup on node-1 (copied while stopped)');
    await shows(run, 'backup [');
    const figures = {
      mode: 'full' as const,
      bytes: 48_200_000,
      wireBytes: 48_900_000,
      files: 1203,
      deleted: 0,
      durationMs: 1200,
      mbPerSecond: 40,
    };
    await update<BackupRecord>(backupCodec, key, (b) => ({
      ...b,
      state: 'completed',
      message: 'completed',
      completedAt: now(),
      figures,
    }));
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(
      run.stdout().trim().split('\n').at(-1),
      `backup ${listed.value.id} of pg1 completed: 48.2 MB, 1203 files in 1.2 s (copied while stopped) on node-1`,
    );

    const table = sf('backups', 'pg1');
    assert.equal((await table.exited).code, 0, table.stderr());
    const [header, row] = table.stdout().trim().split('\n');
    assert.match(header ?? '', /^id\s+state\s+taken\s+node\s+method\s+size\s+files\s+duration$/);
    assert.match(
      row ?? '',
      new RegExp(
        `^${listed.value.id}\\s+completed\\s+\\S+ \\S+Z\\s+node-1\\s+copied while stopped\\s+48\\.2 MB\\s+1203\\s+1\\.2 s$`,
      ),
    );
    const asJson = sf('backups', 'pg1', '--json');
    assert.equal((await asJson.exited).code, 0);
    assert.deepEqual(
      (JSON.parse(asJson.stdout()) as BackupRecord[]).map((b) => b.id),
      [listed.value.id],
    );
  });

  it('sf restore --as follows the copy until the new instance is ready; without --as it restores in place', async () => {
    const [backup] = [...(await readPrefix(client, backupCodec, keys.instanceBackups(id))).items.values()];
    assert.ok(backup);

    const run = sf('restore', 'pg1', backup.value.id, '--as', 'pg1-copy');
    await shows(run, `Restoring backup ${backup.value.id} of pg1 as pg1-copy`);
    const copy = await waitFor(
      async () =>
        [...(await readPrefix(client, instanceCodec, keys.instances())).items.values()].find(
          (i) => i.value.name === 'pg1-copy',
        ),
      { description: 'the restored instance', timeoutMs: 10_000 },
    );
    await shows(run, `copying backup ${backup.value.id} from node-1`);
    await client
      .put(keys.transfer(copy.value.id, 0, 'node-2'))
      .value(json(transfer(copy.value.id, 'node-2', 800_000_000, 'restore')))
      .exec();
    await shows(run, 'restore [');
    await update(
      instanceCodec,
      keys.instance(copy.value.id),
      (i) =>
        ({
          ...i,
          restore: i.restore ? { ...i.restore, state: 'copied' } : undefined,
          message: 'starting replicas',
        }) as InstanceRecord,
    );
    await shows(run, 'starting replicas');
    await update<InstanceRecord>(instanceCodec, keys.instance(copy.value.id), (i) => ({
      ...i,
      phase: 'ready',
      message: 'primary on node-2',
    }));
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(
      run.stdout().trim().split('\n').at(-1),
      `restored backup ${backup.value.id} of pg1 as pg1-copy (ready)`,
    );

    const detail = sf('service', 'pg1-copy');
    assert.equal((await detail.exited).code, 0, detail.stderr());
    assert.match(
      detail.stdout(),
      new RegExp(`restored from:\\s+backup ${backup.value.id} of instance ${id} \\(copied\\)`),
    );

    // In place: the same instance, followed until its update operation ends. The relocation
    // left running by the Ctrl-C test would (rightly) block it.
    await client.delete().prefix(keys.instanceRelocations(id)).exec();
    await update<InstanceRecord>(instanceCodec, keys.instance(id), (i) => ({
      ...i,
      operation: { ...i.operation, state: 'succeeded' },
    }));
    const inPlace = sf('restore', 'pg1', backup.value.id);
    await shows(inPlace, `Restoring backup ${backup.value.id} over pg1: every replica stops`);
    await update<InstanceRecord>(instanceCodec, keys.instance(id), (i) => ({
      ...i,
      message: `backup ${backup.value.id} restored in place`,
      operation: { ...i.operation, state: 'succeeded' },
    }));
    assert.equal((await inPlace.exited).code, 0, inPlace.stderr());
    assert.equal(
      inPlace.stdout().trim().split('\n').at(-1),
      `restored backup ${backup.value.id} of pg1 in place (ready)`,
    );
  });
});
