import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type BackupRecord,
  backupCodec,
  type EventRecord,
  isBackupId,
  json,
  readPrefix,
  readRecord,
} from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, type CallOptions, username } from '@service-foundry/test-support/broker-calls';
import type { InstanceDetail } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

describe('broker: backup requests (sf backup, sf backups)', () => {
  let h: Harness;
  const id = uniqueId('pg');
  const name = uniqueId('pg1');
  const waitingId = uniqueId('waiting');

  const backupsPath = (instance: string) => `/sf/v1/instances/${encodeURIComponent(instance)}/backups`;
  const requestBackup = (instance: string, options: CallOptions = { body: {} }) =>
    h.call('POST', backupsPath(instance), options);
  const stored = async (instanceId: string) =>
    [...(await readPrefix(h.client, backupCodec, h.keys.instanceBackups(instanceId))).items.values()].map(
      (b) => b.value,
    );
  /** What the agent writes as it takes the backup. */
  const setState = async (instanceId: string, backupId: string, change: Partial<BackupRecord>) => {
    const current = await readRecord(h.client, backupCodec, h.keys.backup(instanceId, backupId));
    assert.ok(current);
    await h.client
      .put(h.keys.backup(instanceId, backupId))
      .value(json({ ...current.value, ...change }))
      .exec();
  };

  before(async () => {
    h = await startHarness();
    for (const [instanceId, instanceName] of [
      [id, name],
      [waitingId, uniqueId('waiting-db')],
    ] as const) {
      const res = await h.provision(instanceId, { context: { instance_name: instanceName } });
      assert.equal(res.status, 202, res.text);
    }
    await h.markReady(id);
  });
  after(async () => {
    await h?.close();
  });

  it('rejects a body with fields, an unknown instance and one not ready, writing nothing', async () => {
    const before = await h.dump();
    const cases: Array<[string, CallOptions, number, string]> = [
      [name, { body: { full: true } }, 400, 'BadRequest'],
      [name, { body: [] }, 400, 'BadRequest'],
      ['no-such-instance', { body: {} }, 404, 'NotFound'],
      [waitingId, { body: {} }, 409, 'Conflict'],
      [name, { body: {}, auth: null }, 401, 'Unauthorized'],
    ];
    for (const [instance, options, status, error] of cases) {
      const res = await requestBackup(instance, options);
      assert.equal(res.status, status, `${instance} ${JSON.stringify(options.body)}: ${res.text}`);
      assertOsbError(res.body, error);
    }
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('records a requested backup with a time-ordered id and an event', async () => {
    const res = await requestBackup(name);
    assert.equal(res.status, 202, res.text);
    const record = res.body as BackupRecord;
    assert.match(record.id, /^b-\d{8}T\d{6}-[0-9a-f]{6}$/);
    assert.ok(isBackupId(record.id));
    assert.equal(
      record.id.slice(2, 17),
      record.requestedAt.replace(/[-:]/g, '').slice(0, 15),
      'the id carries its UTC time',
    );
    assert.deepEqual(
      { ...record, id: '', requestedAt: '' },
      {
        id: '',
        instanceId: id,
        instanceName: name,
        serviceName: 'postgres',
        planName: 'small',
        state: 'requested',
        message: 'requested',
        requestedBy: username,
        requestedAt: '',
      },
    );
    assert.deepEqual(await stored(id), [record]);
    const events = (await h.call('GET', '/sf/v1/events?limit=50')).body as EventRecord[];
    assert.deepEqual(
      events.filter((e) => e.kind === 'backup-requested').map((e) => [e.instanceId, e.message.includes(record.id)]),
      [[id, true]],
    );
    const one = await h.call('GET', `${backupsPath(name)}/${record.id}`);
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.body, record);
  });

  it('refuses another backup while one is requested or running, then lists them newest first', async () => {
    const [first] = await stored(id);
    assert.ok(first);
    const before = await h.dump();
    const whileRequested = await requestBackup(name);
    assert.equal(whileRequested.status, 409, whileRequested.text);
    assert.match(
      (whileRequested.body as { description: string }).description,
      new RegExp(`${first.id} .* is requested`),
    );
    await setState(id, first.id, {
      state: 'running',
      message: 'copying',
      node: 'node-2',
      startedAt: new Date().toISOString(),
    });
    const whileRunning = await requestBackup(id);
    assert.equal(whileRunning.status, 409, whileRunning.text);
    assert.match((whileRunning.body as { description: string }).description, /is running/);
    const afterRunning = await h.dump();
    assert.equal(JSON.parse(afterRunning).rows.length, JSON.parse(before).rows.length, 'no backup key added');

    await setState(id, first.id, { state: 'completed', message: 'completed', completedAt: new Date().toISOString() });
    const second = await requestBackup(name);
    assert.equal(second.status, 202, second.text);
    const secondRecord = second.body as BackupRecord;
    await setState(id, secondRecord.id, { state: 'failed', message: 'the node went away' });
    const third = await requestBackup(name);
    assert.equal(third.status, 202, 'a failed backup does not block the next one');
    const thirdRecord = third.body as BackupRecord;

    const listed = await h.call('GET', backupsPath(name));
    assert.equal(listed.status, 200, listed.text);
    const { backups } = listed.body as { backups: BackupRecord[] };
    assert.deepEqual(
      backups.map((b) => [b.id, b.state]),
      [
        [thirdRecord.id, 'requested'],
        [secondRecord.id, 'failed'],
        [first.id, 'completed'],
      ],
    );
    const detail = (await h.call('GET', `/sf/v1/instances/${name}`)).body as InstanceDetail;
    assert.equal(detail.backup?.id, thirdRecord.id, 'sf service shows the newest backup');
  });

  it('lets only one of two concurrent backup requests through', async () => {
    const latest = (await stored(id)).find((b) => b.state === 'requested');
    assert.ok(latest);
    await setState(id, latest.id, { state: 'completed', completedAt: new Date().toISOString() });
    const count = (await stored(id)).length;
    const results = await Promise.all([requestBackup(name), requestBackup(id)]);
    assert.deepEqual(results.map((r) => r.status).sort(), [202, 409], results.map((r) => r.text).join('\n'));
    assert.equal((await stored(id)).length, count + 1);
  });

  it('answers 404 for an unknown backup and 400 for a malformed id', async () => {
    const missing = await h.call('GET', `${backupsPath(name)}/b-20000101T000000-000000`);
    assert.equal(missing.status, 404, missing.text);
    assertOsbError(missing.body, 'NotFound');
    const malformed = await h.call('GET', `${backupsPath(name)}/no.dots`);
    assert.equal(malformed.status, 400, malformed.text);
    const nobody = await h.call('GET', backupsPath('no-such-instance'));
    assert.equal(nobody.status, 404, nobody.text);
  });

  it('still lists the backups of a deleted instance, by its id or its old name', async () => {
    const before = (await h.call('GET', backupsPath(name))).body as { backups: BackupRecord[] };
    await h.deleteLikeController(id);
    for (const key of [id, name]) {
      const res = await h.call('GET', backupsPath(key));
      assert.equal(res.status, 200, `${key}: ${res.text}`);
      assert.deepEqual(res.body, before);
    }
    const [newest] = before.backups;
    assert.ok(newest);
    const one = await h.call('GET', `${backupsPath(id)}/${newest.id}`);
    assert.equal(one.status, 200, one.text);
    const gone = await requestBackup(id);
    assert.equal(gone.status, 404, 'no new backups of a deleted instance');
  });
});
