import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { UpgradeStarted, UpgradeView } from '@service-foundry/api';
import { Catalog, type EventRecord, type InstanceRecord, json } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, osbLogin, postgresServiceId, viewerLogin } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';
const oldImage = 'service-foundry/postgres:15-bookworm-r6';

/**
 * The operator API of `sf upgrade-service` and `sf upgrade-all` on a real etcd with no
 * controller: what it shows before an upgrade, what it refuses, and that it starts the
 * same operation an OSB PATCH with the plan's maintenance_info would.
 */
describe('broker: upgrades through the operator API', () => {
  let h: Harness;
  let version: string;
  let image: string;
  const upgradePath = (name: string) => `/sf/v1/instances/${encodeURIComponent(name)}/upgrade`;

  before(async () => {
    h = await startHarness();
    const entry = (await Catalog.load()).byServiceId(postgresServiceId);
    const plan = entry?.osb.plans.find((p) => p.id === haSmallPlanId);
    assert.ok(entry && plan?.maintenance_info);
    version = plan.maintenance_info.version;
    image = entry.runtime.image;
  });
  after(async () => {
    await h?.close();
  });

  /** A ready instance named `name` whose record runs `older`. */
  async function instance(name: string, older: Partial<InstanceRecord>, extra: Record<string, unknown> = {}) {
    const id = uniqueId('up');
    const res = await h.provision(id, { context: { instance_name: name }, ...extra });
    assert.equal(res.status, 202, res.text);
    await h.markReady(id);
    const { image: _image, maintenanceVersion: _version, ...rest } = (await h.readInstance(id)) as InstanceRecord;
    await h.client
      .put(h.keys.instance(id))
      .value(json({ ...rest, ...older }))
      .exec();
    return id;
  }

  it('says what an upgrade would do before it starts, and that a current instance has nothing to upgrade', async () => {
    const name = uniqueId('ha-old');
    const id = await instance(name, { maintenanceVersion: '6.0.0', image: oldImage }, { plan_id: haSmallPlanId });
    const before = await h.dump();
    const res = await h.call('GET', upgradePath(name));
    assert.equal(res.status, 200, res.text);
    const view = res.body as UpgradeView;
    assert.deepEqual(
      { ...view, description: undefined },
      {
        instanceId: id,
        name,
        service: 'postgres',
        plan: 'ha-small',
        running: { version: '6.0.0', image: oldImage },
        offered: { version, image },
        reason: `runs maintenance version 6.0.0; its plan offers ${version}`,
        interruption: 'switchover',
        description: undefined,
      },
    );
    assert.match(view.description, /then a switchover moves the primary/);
    assert.equal(await h.dump(), before, 'looking changes nothing');

    const current = uniqueId('current');
    await instance(current, { maintenanceVersion: version, image });
    const nothing = (await h.call('GET', upgradePath(current))).body as UpgradeView;
    assert.equal(nothing.reason, null);
    assert.equal(nothing.interruption, 'restart', 'one replica: a restart');
    const missing = await h.call('GET', upgradePath(uniqueId('absent')));
    assert.equal(missing.status, 404);
  });

  it('starts the upgrade an OSB PATCH would: same record, same operation for a re-sent request, an event', async () => {
    const name = uniqueId('pg-old');
    const id = await instance(name, { maintenanceVersion: '6.0.0', image: oldImage });
    const res = await h.call('POST', upgradePath(name));
    assert.equal(res.status, 202, res.text);
    const started = res.body as UpgradeStarted;
    assert.ok(started.operation);
    assert.equal(started.interruption, 'restart');
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(record.maintenanceVersion, version);
    assert.equal(record.image, image);
    assert.equal(record.operation.id, started.operation);
    assert.equal(record.operation.state, 'in progress');
    assert.deepEqual(record.operation.request, { maintenanceVersion: version });
    assert.equal(record.operation.description, started.description);

    const again = await h.call('POST', upgradePath(id));
    assert.equal(again.status, 202);
    assert.equal((again.body as UpgradeStarted).operation, started.operation, 'the upgrade already running');
    const patch = await h.call('PATCH', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      body: { service_id: postgresServiceId, maintenance_info: { version } },
    });
    assert.equal(patch.status, 202, patch.text);
    assert.deepEqual(patch.body, { operation: started.operation }, 'the platform asking the same gets the same');

    const events = (await h.call('GET', '/sf/v1/events?limit=50')).body as EventRecord[];
    const upgrades = events.filter((e) => e.kind === 'instance-upgrade' && e.instanceId === id);
    assert.equal(upgrades.length, 1, 'one event for one upgrade');
    assert.match(upgrades[0]?.message ?? '', /requested by ops-alice/);

    await h.markReady(id);
    const done = await h.call('POST', upgradePath(name));
    assert.equal(done.status, 200, 'upgraded: nothing to do');
    assert.equal((done.body as UpgradeStarted).operation, null);
  });

  it('refuses the platform and viewer logins, a body, and an instance not ready, writing nothing', async () => {
    const name = uniqueId('pg-refuse');
    const id = await instance(name, { maintenanceVersion: '6.0.0', image: oldImage });
    const before = await h.dump();
    for (const auth of [osbLogin, viewerLogin]) {
      const res = await h.call('POST', upgradePath(name), { auth });
      assert.equal(res.status, 403, res.text);
    }
    const withBody = await h.call('POST', upgradePath(name), { body: { image: 'evil:latest' } });
    assert.equal(withBody.status, 400, withBody.text);
    assert.equal(await h.dump(), before);

    const record = (await h.readInstance(id)) as InstanceRecord;
    await h.client
      .put(h.keys.instance(id))
      .value(json({ ...record, phase: 'deprovisioning' }))
      .exec();
    const notReady = await h.call('POST', upgradePath(name));
    assert.equal(notReady.status, 422, notReady.text);
    assertOsbError(notReady.body, 'ConcurrencyError');
    const failed = { ...record, phase: 'failed', message: 'image not found' };
    await h.client.put(h.keys.instance(id)).value(json(failed)).exec();
    const broken = await h.call('POST', upgradePath(name));
    assert.equal(broken.status, 422, broken.text);
    assertOsbError(broken.body, 'InstanceFailed');
    assert.equal((await h.readInstance(id))?.image, oldImage);
  });

  it('lists every ready, idle instance that qualifies, oldest first (sf upgrade-all)', async () => {
    const first = uniqueId('list-a');
    const second = uniqueId('list-b');
    const busy = uniqueId('list-busy');
    await instance(first, { maintenanceVersion: '6.0.0', image: oldImage });
    await instance(uniqueId('list-current'), { maintenanceVersion: version, image });
    await instance(second, { maintenanceVersion: version });
    const busyId = await instance(busy, { maintenanceVersion: '6.0.0', image: oldImage });
    const patch = await h.call('PATCH', `/v2/service_instances/${busyId}?accepts_incomplete=true`, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(patch.status, 202, patch.text);

    const res = await h.call('GET', '/sf/v1/upgrades', { auth: viewerLogin });
    assert.equal(res.status, 200, res.text);
    const names = (res.body as UpgradeView[]).map((v) => v.name);
    const ours = names.filter((n) => n.startsWith('list-'));
    assert.deepEqual(ours, [first, second]);
    const rebuilt = (res.body as UpgradeView[]).find((v) => v.name === second);
    assert.match(rebuilt?.reason ?? '', /image is not recorded/);
  });
});
