import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RotationStarted, RotationView } from '@service-foundry/api';
import {
  type AppliedPasswords,
  type EventRecord,
  type InstanceRecord,
  type InstanceSecret,
  json,
  type ReplicaStatus,
  readSealed,
  secretCodec,
} from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { viewerLogin } from '@service-foundry/test-support/broker-calls';
import { secretBox } from '@service-foundry/test-support/secrets';
import { type Harness, startHarness } from './helpers.js';

/**
 * `sf rotate-credentials` on a real etcd with no agents: every row of the table in
 * credential-rotation.ts. The replica statuses agents would write after running the
 * catalog's `rotatePasswords` are written here by hand, one step at a time; the broker's
 * GET advances the rotation as its background pass does.
 */
describe('broker: rotating an instance’s own passwords, step by step', () => {
  let h: Harness;
  const path = (id: string) => `/sf/v1/instances/${encodeURIComponent(id)}/credentials-rotation`;

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  async function readyInstance(): Promise<string> {
    const id = uniqueId('rot');
    const res = await h.provision(id, { context: { instance_name: id } });
    assert.equal(res.status, 202, res.text);
    await h.markReady(id);
    return id;
  }
  async function secretOf(id: string): Promise<InstanceSecret> {
    const read = await readSealed(h.client, secretBox, secretCodec, h.keys.secret(id));
    assert.ok(read, 'the secret');
    return read.value;
  }
  /** The status an agent writes for its running server once it has run a rotation step. */
  async function serverReports(id: string, passwords?: AppliedPasswords): Promise<void> {
    const status: ReplicaStatus = {
      instanceId: id,
      ordinal: 0,
      node: 'node-1',
      state: 'running',
      message: 'running',
      updatedAt: new Date().toISOString(),
      ...(passwords ? { passwords } : {}),
    };
    await h.client.put(h.keys.status(id, 0)).value(json(status)).exec();
  }
  async function view(id: string): Promise<RotationView> {
    const res = await h.call('GET', path(id));
    assert.equal(res.status, 200, res.text);
    return res.body as RotationView;
  }

  it('starts in one write: new passwords, the old ones kept as previous, an update operation; asked again, the same one', async () => {
    const id = await readyInstance();
    const old = await secretOf(id);
    assert.equal((await view(id)).step, 'none');
    const res = await h.call('POST', path(id));
    assert.equal(res.status, 202, res.text);
    const started = res.body as RotationStarted;
    assert.equal(started.started, true);
    assert.equal(started.generation, 1);
    assert.equal(started.step, 'accept-previous');
    assert.doesNotMatch(res.text, new RegExp(old.adminPassword), 'no password in the reply');

    const rotated = await secretOf(id);
    assert.equal(rotated.generation, 1);
    assert.notEqual(rotated.adminPassword, old.adminPassword);
    assert.ok(old.replicationPassword, 'postgres instances have a replication login');
    assert.notEqual(rotated.replicationPassword, old.replicationPassword);
    assert.deepEqual(rotated.previous, {
      adminPassword: old.adminPassword,
      replicationPassword: old.replicationPassword,
    });
    const instance = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(instance.operation.state, 'in progress');
    assert.equal(instance.operation.id, started.operation);
    assert.equal(instance.operation.request?.rotateCredentials, true);

    const again = await h.call('POST', path(id));
    assert.equal(again.status, 202, again.text);
    assert.equal((again.body as RotationStarted).operation, started.operation);
    assert.equal((again.body as RotationStarted).started, false);
    assert.deepEqual(await secretOf(id), rotated, 'asking again changes no password');
    const update = await h.call('PATCH', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      body: { service_id: instance.serviceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(update.status, 422, 'no other update while the passwords rotate');
  });

  it('drops the previous passwords once the server has the new ones, and ends once it refuses the old ones', async () => {
    const id = await readyInstance();
    await h.call('POST', path(id));
    const rotated = await secretOf(id);
    await serverReports(id);
    assert.equal((await view(id)).step, 'accept-previous', 'no report yet: the previous passwords stay');
    assert.ok((await secretOf(id)).previous);

    await serverReports(id, { generation: 1, phase: 'accept-previous' });
    const retiring = await view(id);
    assert.equal(retiring.step, 'new-only');
    assert.deepEqual(retiring.replicas[0]?.passwords, { generation: 1, phase: 'accept-previous' });
    const { previous: _gone, ...withoutPrevious } = rotated;
    assert.deepEqual(await secretOf(id), withoutPrevious, 'the same new passwords, without the old ones');
    assert.equal(((await h.readInstance(id)) as InstanceRecord).operation.state, 'in progress');

    await serverReports(id, { generation: 1, phase: 'new-only' });
    const done = await view(id);
    assert.equal(done.operation, null);
    const instance = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(instance.operation.state, 'succeeded', instance.operation.description);
    assert.match(instance.operation.description, /replaced \(generation 1\); the previous ones are refused/);
    const events = (await h.call('GET', `/sf/v1/events?instance=${id}`)).body as EventRecord[];
    const kinds = events.map((e) => e.kind);
    for (const kind of ['credentials-rotation', 'credentials-rotation-progress', 'credentials-rotation-complete']) {
      assert.ok(kinds.includes(kind), `event ${kind} in ${kinds.join(', ')}`);
    }

    await h.call('POST', path(id));
    const second = await secretOf(id);
    assert.equal(second.generation, 2, 'the next rotation is a new generation');
    assert.equal(second.previous?.adminPassword, rotated.adminPassword);
  });

  it('a rotation that runs out of time fails with the previous passwords kept; asking again resumes it unchanged', async () => {
    const id = await readyInstance();
    await h.call('POST', path(id));
    const rotated = await secretOf(id);
    const instance = (await h.readInstance(id)) as InstanceRecord;
    const longAgo = new Date(Date.now() - 11 * 60_000).toISOString();
    await h.client
      .put(h.keys.instance(id))
      .value(json({ ...instance, operation: { ...instance.operation, startedAt: longAgo } }))
      .exec();
    await serverReports(id);
    await view(id);
    const failed = ((await h.readInstance(id)) as InstanceRecord).operation;
    assert.equal(failed.state, 'failed');
    assert.match(failed.description, /did not finish within 10 min: waiting for replica 0 on node-1/);
    assert.match(failed.description, /previous passwords are still accepted/);
    assert.deepEqual(await secretOf(id), rotated, 'the previous passwords are kept');

    const resumed = await h.call('POST', path(id));
    assert.equal(resumed.status, 202, resumed.text);
    assert.equal((resumed.body as RotationStarted).started, true);
    assert.deepEqual(await secretOf(id), rotated, 'resumed with the same passwords, not a third set');
    assert.match(((await h.readInstance(id)) as InstanceRecord).operation.description, /^resuming the rotation/);
  });

  it('refuses bad input, unknown instances and read-only logins, changing nothing', async () => {
    const id = await readyInstance();
    const before = await h.dump();
    const body = await h.call('POST', path(id), { body: { generation: 7 } });
    assert.equal(body.status, 400, body.text);
    const unknown = await h.call('POST', path(uniqueId('absent')));
    assert.equal(unknown.status, 404, unknown.text);
    const viewer = await h.call('POST', path(id), { auth: viewerLogin });
    assert.equal(viewer.status, 403, viewer.text);
    assert.equal(await h.dump(), before);

    // An instance on an older image: its servers may not have the command.
    const instance = (await h.readInstance(id)) as InstanceRecord;
    await h.client
      .put(h.keys.instance(id))
      .value(json({ ...instance, image: 'service-foundry/postgres:15-bookworm-r6' }))
      .exec();
    const older = await h.dump();
    const refused = await h.call('POST', path(id));
    assert.equal(refused.status, 422, refused.text);
    assert.match(refused.text, /RotationNotSupported/);
    assert.match(refused.text, /upgrade it first \(sf upgrade-service/);
    assert.equal(await h.dump(), older);
  });
});
