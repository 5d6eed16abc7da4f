import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type BackupRecord,
  Catalog,
  type EventRecord,
  type InstanceRecord,
  json,
  type RelocationRecord,
  readSealed,
  secretCodec,
} from '@service-foundry/core';
import { secretBox, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, type CallOptions } from '@service-foundry/test-support/broker-calls';
import type { InstanceDetail } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';

describe('broker: restoring a backup in place (sf restore NAME BACKUP)', () => {
  let h: Harness;
  const id = uniqueId('pg');
  const name = uniqueId('pg1');
  const restore = (instance: string, options: CallOptions) =>
    h.call('POST', `/sf/v1/instances/${encodeURIComponent(instance)}/restore`, options);
  const putBackup = async (state: BackupRecord['state']) => {
    const backupId = `b-20250102T030405-${Math.random().toString(16).slice(2, 8).padEnd(6, '0')}`;
    const record: BackupRecord = {
      id: backupId,
      instanceId: id,
      instanceName: name,
      serviceName: 'postgres',
      planName: 'ha-small',
      state,
      message: state,
      requestedBy: 'platform',
      requestedAt: new Date().toISOString(),
      ...(state === 'completed' ? { node: 'node-2', ordinal: 0, completedAt: new Date().toISOString() } : {}),
    };
    await h.client.put(h.keys.backup(id, backupId)).value(json(record)).exec();
    return record;
  };

  before(async () => {
    h = await startHarness({ routerPortRange: { min: 42100, max: 42199 } });
    const res = await h.provision(id, { plan_id: haSmallPlanId, context: { instance_name: name }, parameters: {} });
    assert.equal(res.status, 202, res.text);
  });
  after(async () => {
    await h?.close();
  });

  it('refuses while the instance is not ready, being relocated, or its backup not complete, writing nothing', async () => {
    const completed = await putBackup('completed');
    let before = await h.dump();
    const provisioning = await restore(name, { body: { backup: completed.id } });
    assert.equal(provisioning.status, 409, provisioning.text);
    assert.match((provisioning.body as { description: string }).description, /is provisioning/);
    assert.equal(await h.dump(), before, 'no key changed');

    await h.markReady(id);
    const running = await putBackup('running');
    before = await h.dump();
    const notDone = await restore(name, { body: { backup: running.id } });
    assert.equal(notDone.status, 409, notDone.text);
    const missing = await restore(name, { body: { backup: 'b-20000101T000000-000000' } });
    assert.equal(missing.status, 404, missing.text);
    assert.equal(await h.dump(), before, 'no key changed');

    const moving = h.keys.relocation(id, 0);
    const relocation: RelocationRecord = {
      instanceId: id,
      ordinal: 0,
      from: 'node-1',
      to: 'node-2',
      keepSource: false,
      phase: 'copying',
      message: 'copying',
      reason: 'operator',
      requestedBy: 'alice',
      requestedAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    };
    await h.client.put(moving).value(json(relocation)).exec();
    before = await h.dump();
    const relocating = await restore(name, { body: { backup: completed.id } });
    assert.equal(relocating.status, 409, relocating.text);
    assert.match((relocating.body as { description: string }).description, /being relocated \(copying\)/);
    assert.equal(await h.dump(), before, 'no key changed');
    await h.client.delete().key(moving).exec();
    await h.client.delete().key(h.keys.backup(id, running.id)).exec();
  });

  it('records the restore for the controller: state stopping, an update operation, an event', async () => {
    const backup = await putBackup('completed');
    const res = await restore(name, { body: { backup: backup.id } });
    assert.equal(res.status, 202, res.text);
    const view = res.body as InstanceDetail;
    assert.equal(view.id, id, 'the same instance');
    const instance = await h.readInstance(id);
    assert.deepEqual(instance?.restore, {
      instanceId: id,
      backupId: backup.id,
      node: 'node-2',
      state: 'stopping',
      inPlace: true,
    });
    assert.equal(instance?.operation.type, 'update');
    assert.equal(instance?.operation.state, 'in progress');
    assert.equal(instance?.phase, 'ready');
    const again = await restore(name, { body: { backup: backup.id } });
    assert.equal(again.status, 409, 'one restore at a time');
  });
});

describe('broker: restoring a backup into a new instance (sf restore --as)', () => {
  let h: Harness;
  const id = uniqueId('pg');
  const name = uniqueId('pg1');
  const parameters = { replicas: 2, durability: 'received' };

  const restore = (instance: string, options: CallOptions) =>
    h.call('POST', `/sf/v1/instances/${encodeURIComponent(instance)}/restore`, options);
  /** A backup record in the state the agent leaves it in. */
  const putBackup = async (instanceId: string, instanceName: string, state: BackupRecord['state']) => {
    const backupId = `b-20250102T030405-${Math.random().toString(16).slice(2, 8).padEnd(6, '0')}`;
    const record: BackupRecord = {
      id: backupId,
      instanceId,
      instanceName,
      serviceName: 'postgres',
      planName: 'ha-small',
      state,
      message: state,
      requestedBy: 'platform',
      requestedAt: new Date().toISOString(),
      ...(state === 'completed'
        ? {
            node: 'node-2',
            ordinal: 0,
            method: 'hook' as const,
            completedAt: new Date().toISOString(),
            figures: {
              mode: 'full' as const,
              bytes: 48_200_000,
              wireBytes: 48_900_000,
              files: 1203,
              deleted: 0,
              durationMs: 1200,
              mbPerSecond: 40,
            },
          }
        : {}),
    };
    await h.client.put(h.keys.backup(instanceId, backupId)).value(json(record)).exec();
    return record;
  };
  const secretOf = async (instanceId: string) =>
    (await readSealed(h.client, secretBox, secretCodec, h.keys.secret(instanceId)))?.value;

  before(async () => {
    h = await startHarness({ routerPortRange: { min: 42000, max: 42099 } });
    const res = await h.provision(id, { plan_id: haSmallPlanId, context: { instance_name: name }, parameters });
    assert.equal(res.status, 202, res.text);
    await h.markReady(id);
  });
  after(async () => {
    await h?.close();
  });

  it('rejects bad bodies (400), writing nothing', async () => {
    const backup = await putBackup(id, name, 'completed');
    const before = await h.dump();
    const bad: unknown[] = [
      {},
      { backup: 'a.b', as: 'x' },
      { backup: backup.id, as: '' },
      { backup: backup.id, as: 'x', force: true },
      [],
    ];
    for (const body of bad) {
      const res = await restore(name, { body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
      assertOsbError(res.body, 'BadRequest');
    }
    const missing = await restore(name, { body: { backup: 'b-20000101T000000-000000', as: 'copy' } });
    assert.equal(missing.status, 404, missing.text);
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('refuses a backup that is not completed (409)', async () => {
    for (const state of ['requested', 'running', 'failed'] as const) {
      const backup = await putBackup(id, name, state);
      const before = await h.dump();
      const res = await restore(name, { body: { backup: backup.id, as: `${name}-copy` } });
      assert.equal(res.status, 409, `${state}: ${res.text}`);
      assert.match(
        (res.body as { description: string }).description,
        new RegExp(`is ${state}; only a completed backup`),
      );
      assert.equal(await h.dump(), before, 'no key changed');
    }
  });

  it("creates the new instance like provisioning does, with the source's parameters and a copy of its credentials", async () => {
    const backup = await putBackup(id, name, 'completed');
    const copyName = `${name}-copy`;
    const res = await restore(name, { body: { backup: backup.id, as: copyName } });
    assert.equal(res.status, 202, res.text);
    const view = res.body as InstanceDetail;
    assert.equal(view.name, copyName);
    assert.equal(view.phase, 'provisioning');
    assert.deepEqual(view.restore, { instanceId: id, backupId: backup.id, node: 'node-2', state: 'copying' });
    assert.notEqual(view.id, id);

    const record = await h.readInstance(view.id);
    const source = await h.readInstance(id);
    assert.ok(record && source);
    assert.deepEqual(
      {
        serviceId: record.serviceId,
        planId: record.planId,
        parameters: record.parameters,
        replicas: record.replicas,
        io: record.io,
        failover: record.failover,
      },
      {
        serviceId: source.serviceId,
        planId: source.planId,
        parameters: source.parameters,
        replicas: 2,
        io: source.io,
        failover: source.failover,
      },
    );
    assert.deepEqual(record.context, { platform: 'sf', instance_name: copyName });
    const entry = (await Catalog.load()).byServiceId(record.serviceId);
    assert.equal(
      record.image,
      entry?.runtime.image,
      "a new instance runs the catalog's image, whatever the source ran",
    );
    assert.deepEqual(record.restore, view.restore);
    assert.equal(record.operation.type, 'provision');
    assert.equal(record.operation.state, 'in progress');
    assert.ok(record.routerPort >= 42000 && record.routerPort <= 42099 && record.routerPort !== source.routerPort);
    assert.equal(await h.client.get(h.keys.routerPort(record.routerPort)).string(), JSON.stringify(view.id));
    const sourceSecret = await secretOf(id);
    assert.ok(sourceSecret?.adminPassword);
    assert.deepEqual(await secretOf(view.id), sourceSecret, "the restored data holds the source's users");

    const events = (await h.call('GET', '/sf/v1/events?limit=50')).body as EventRecord[];
    assert.deepEqual(
      events.filter((e) => e.kind === 'restore-requested').map((e) => e.instanceId),
      [view.id],
    );
    const shown = (await h.call('GET', `/sf/v1/instances/${copyName}`)).body as InstanceDetail;
    assert.equal(shown.restore?.backupId, backup.id);
  });

  it("refuses a name already taken in the operators' scope, or an instance id (409), writing nothing", async () => {
    const backup = await putBackup(id, name, 'completed');
    const before = await h.dump();
    // A restored instance is the operators': the name of the previous restore is taken there.
    // (The source's own name is its platform space's, where the restored instance does not live.)
    for (const taken of [`${name}-copy`, id]) {
      const res = await restore(id, { body: { backup: backup.id, as: taken } });
      assert.equal(res.status, 409, `${taken}: ${res.text}`);
      assert.match((res.body as { description: string }).description, /is taken in the operators' scope/);
    }
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it("restores a deleted instance's backup with the plan's defaults while its credentials remain", async () => {
    const otherId = uniqueId('gone');
    const otherName = uniqueId('gone-db');
    const put = await h.provision(otherId, {
      plan_id: haSmallPlanId,
      context: { instance_name: otherName },
      parameters,
    });
    assert.equal(put.status, 202, put.text);
    const backup = await putBackup(otherId, otherName, 'completed');
    const secret = await secretOf(otherId);
    const source = await h.readInstance(otherId);
    assert.ok(source);
    // The instance record goes; its secret is still there.
    await h.client.delete().key(h.keys.instance(otherId)).exec();
    await h.client.delete().key(h.keys.routerPort(source.routerPort)).exec();

    const res = await restore(otherName, { body: { backup: backup.id, as: `${otherName}-back` } });
    assert.equal(res.status, 202, res.text);
    const record = await h.readInstance((res.body as InstanceDetail).id);
    assert.deepEqual(record?.parameters, {});
    assert.equal(record?.replicas, 3, "ha-small's default");
    assert.deepEqual(await secretOf(record?.id ?? ''), secret);
  });

  it('refuses to restore when the source credentials are gone, and creates no instance', async () => {
    const backup = await putBackup(id, name, 'completed');
    await h.deleteLikeController(id);
    assert.equal(await secretOf(id), undefined);
    const before = await h.dump();
    const countBefore = (await h.client.getAll().prefix(h.keys.instances()).keys()).length;
    const res = await restore(id, { body: { backup: backup.id, as: `${name}-late` } });
    assert.equal(res.status, 409, res.text);
    assert.equal(
      (res.body as { description: string }).description,
      `the credentials of instance ${name} are gone; its backups cannot be restored`,
    );
    assert.equal((await h.client.getAll().prefix(h.keys.instances()).keys()).length, countBefore);
    assert.equal(await h.dump(), before, 'no key changed');
    const instances = (await h.call('GET', '/sf/v1/instances')).body as InstanceRecord[];
    assert.ok(!instances.some((i) => i.name === `${name}-late`));
  });
});
