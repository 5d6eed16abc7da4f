import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Catalog,
  defaultCatalogDir,
  type InstanceRecord,
  json,
  type ReplicaStatus,
  type SwitchoverRecord,
} from '@service-foundry/core';
import { suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, call, postgresServiceId, provisionBody } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';
const path = (id: string) => `/v2/service_instances/${id}`;
const asyncPath = (id: string) => `${path(id)}?accepts_incomplete=true`;
/** An image the catalog no longer has (what an instance provisioned before a rebuild runs). */
const oldImage = 'service-foundry/postgres:15-bookworm-r6';

/** The real catalog, with every postgres plan's maintenance_info at an older version. */
async function olderCatalog(dir: string): Promise<void> {
  const entry = JSON.parse(await readFile(join(defaultCatalogDir(), 'postgres', 'service.json'), 'utf8'));
  for (const plan of entry.osb.plans) plan.maintenance_info = { version: '1.0.0', description: 'the old image' };
  await mkdir(join(dir, 'postgres'), { recursive: true });
  await writeFile(join(dir, 'postgres', 'service.json'), JSON.stringify(entry));
}

/**
 * OSB v2.17 "Updating a Service Instance" with the plan's `maintenance_info`: an upgrade.
 * No controller runs: the tests check what the broker refuses and the record it leaves
 * (the controller's rolling restart is the scheduler's tests' concern).
 */
describe('OSB: upgrading (maintenance_info)', () => {
  let h: Harness;
  let version: string;
  let image: string;
  const olderDir = suiteTempDir('sf-osb-upgrade-catalog');

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

  /** A ready instance whose record says it runs `older` (as one provisioned before the catalog moved on). */
  async function olderInstance(older: Partial<InstanceRecord>, extra: Record<string, unknown> = {}): Promise<string> {
    const id = uniqueId('up');
    assert.equal((await h.provision(id, extra)).status, 202);
    await h.markReady(id);
    const record = (await h.readInstance(id)) as InstanceRecord;
    const { image: _image, maintenanceVersion: _version, ...rest } = record;
    await h.client
      .put(h.keys.instance(id))
      .value(json({ ...rest, ...older }))
      .exec();
    return id;
  }
  const upgradeBody = () => ({ service_id: postgresServiceId, maintenance_info: { version } });

  it('records the maintenance version and the catalog image at provision', async () => {
    const id = uniqueId('prov');
    assert.equal((await h.provision(id)).status, 202);
    const record = await h.readInstance(id);
    assert.equal(record?.maintenanceVersion, version);
    assert.equal(record?.image, image);
  });

  it('starts an upgrade: 202, the target version and image on the record, a re-sent PATCH gets the same operation', async () => {
    const id = await olderInstance({ maintenanceVersion: '6.0.0', image: oldImage });
    const res = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(res.status, 202, res.text);
    const { operation } = res.body as { operation: string };
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(record.maintenanceVersion, version);
    assert.equal(record.image, image);
    assert.equal(record.operation.id, operation);
    assert.equal(record.operation.type, 'update');
    assert.equal(record.operation.state, 'in progress');
    assert.deepEqual(record.operation.request, { maintenanceVersion: version });
    assert.match(record.operation.description, new RegExp(`from maintenance version 6\\.0\\.0 to ${version}`));
    assert.match(record.operation.description, /restarts once .* unavailable for that restart/);
    assert.ok(record.operation.description.includes(image));

    const again = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(again.status, 202, 'MUST be 202 with the same operation while it runs');
    assert.deepEqual(again.body, { operation });
    const poll = await h.call('GET', `${path(id)}/last_operation?operation=${operation}`);
    assert.equal((poll.body as { state: string }).state, 'in progress');
    assert.ok((poll.body as { description: string }).description.startsWith('upgrading from'));
    const other = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(other.status, 422, 'another update waits for the upgrade');
    assertOsbError(other.body, 'ConcurrencyError');

    await h.markReady(id); // what the controller does once every replica runs the image
    const done = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(done.status, 200, 'upgraded: the same request has no effect any more');
    assert.deepEqual(done.body, {});
  });

  it('answers 200 {} without writing when the instance runs the plan’s version and the catalog’s image', async () => {
    const id = await olderInstance({ maintenanceVersion: version, image });
    const before = await h.dump();
    for (const query of ['?accepts_incomplete=true', '']) {
      const res = await h.call('PATCH', `${path(id)}${query}`, { body: upgradeBody() });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, {});
    }
    assert.equal(await h.dump(), before);
  });

  it('upgrades an instance on the plan’s version whose image was rebuilt, or was never recorded', async () => {
    for (const older of [{ maintenanceVersion: version, image: oldImage }, { maintenanceVersion: version }]) {
      const id = await olderInstance(older);
      const res = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
      assert.equal(res.status, 202, res.text);
      const record = (await h.readInstance(id)) as InstanceRecord;
      assert.equal(record.image, image);
      assert.match(record.operation.description, new RegExp(`rebuilt image of maintenance version ${version}`));
    }
  });

  it('upgrades again when a replica still runs an older image after the last upgrade ended', async () => {
    const id = await olderInstance({ maintenanceVersion: version, image });
    const status: ReplicaStatus = {
      instanceId: id,
      ordinal: 0,
      node: 'node-1',
      state: 'running',
      message: 'ready',
      updatedAt: new Date().toISOString(),
      image: oldImage,
    };
    await h.client.put(h.keys.status(id, 0)).value(json(status)).exec();
    const res = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(res.status, 202, res.text);
    const detail = await h.call('GET', `/sf/v1/instances/${id}`);
    assert.equal((detail.body as { maintenance: { upgradeAvailable: boolean } }).maintenance.upgradeAvailable, false);
  });

  it('describes a replicated instance’s upgrade as one switchover', async () => {
    const id = await olderInstance({ maintenanceVersion: '6.0.0', image: oldImage }, { plan_id: haSmallPlanId });
    const res = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(res.status, 202, res.text);
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.match(
      record.operation.description,
      /replicas restart one at a time on image .*, then a switchover moves the primary \(one switchover's write gap\)/,
    );
  });

  it('refuses an upgrade without accepts_incomplete (AsyncRequired), writing nothing', async () => {
    const id = await olderInstance({ maintenanceVersion: '6.0.0', image: oldImage });
    const before = await h.dump();
    const res = await h.call('PATCH', path(id), { body: upgradeBody() });
    assert.equal(res.status, 422, res.text);
    assertOsbError(res.body, 'AsyncRequired');
    assert.equal(await h.dump(), before);
  });

  it('refuses an upgrade combined with a parameter or plan change (one at a time), writing nothing', async () => {
    const id = await olderInstance({ maintenanceVersion: '6.0.0', image: oldImage });
    const before = await h.dump();
    const withParameters = await h.call('PATCH', asyncPath(id), {
      body: { ...upgradeBody(), parameters: { local_io: 'batched' } },
      apiVersion: '2.16',
    });
    assert.equal(withParameters.status, 422, withParameters.text);
    assertOsbError(withParameters.body, 'MaintenanceUpdateNotSupported');
    assert.match((withParameters.body as { description: string }).description, /one at a time/);
    assert.equal((withParameters.body as { update_repeatable: boolean }).update_repeatable, false);
    const withPlan = await h.call('PATCH', asyncPath(id), { body: { ...upgradeBody(), plan_id: haSmallPlanId } });
    assert.equal(withPlan.status, 422, withPlan.text);
    assertOsbError(withPlan.body, 'PlanChangeNotSupported');
    assert.match((withPlan.body as { description: string }).description, /one at a time: upgrade first/);
    assert.equal(await h.dump(), before);

    // Parameters the instance already has are no change: the upgrade alone goes ahead.
    const record = (await h.readInstance(id)) as InstanceRecord;
    const same = await h.call('PATCH', asyncPath(id), { body: { ...upgradeBody(), parameters: record.parameters } });
    assert.equal(same.status, 202, same.text);
  });

  it('refuses an upgrade while a switchover is under way (ConcurrencyError), writing nothing', async () => {
    const id = await olderInstance({ maintenanceVersion: '6.0.0', image: oldImage }, { plan_id: haSmallPlanId });
    const now = new Date().toISOString();
    const switchover: SwitchoverRecord = {
      instanceId: id,
      from: { ordinal: 0, node: 'node-1' },
      fromEpoch: 1,
      to: { ordinal: 1, node: 'node-2' },
      phase: 'stopping',
      message: 'stopping the old primary',
      requestedBy: 'ops-alice',
      requestedAt: now,
      updatedAt: now,
    };
    await h.client.put(h.keys.switchover(id)).value(json(switchover)).exec();
    const before = await h.dump();
    const res = await h.call('PATCH', asyncPath(id), { body: upgradeBody(), apiVersion: '2.16' });
    assert.equal(res.status, 422, res.text);
    assertOsbError(res.body, 'ConcurrencyError');
    assert.equal((res.body as { update_repeatable: boolean }).update_repeatable, true, 'it may pass later');
    assert.equal(await h.dump(), before);

    await h.client
      .put(h.keys.switchover(id))
      .value(json({ ...switchover, phase: 'done', message: 'done' }))
      .exec();
    const after = await h.call('PATCH', asyncPath(id), { body: upgradeBody() });
    assert.equal(after.status, 202, after.text);
  });

  it('refuses the version a catalog moved away from (MaintenanceInfoConflict) and shows both versions to operators', async () => {
    await olderCatalog(olderDir.path);
    const older = await h.extraBroker({ catalogDir: olderDir.path });
    const id = uniqueId('old');
    const created = await call(older.url, 'PUT', asyncPath(id), { body: provisionBody() });
    assert.equal(created.status, 202);
    await h.markReady(id);
    assert.equal((await h.readInstance(id))?.maintenanceVersion, '1.0.0');
    const before = await h.dump();
    const stale = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, maintenance_info: { version: '1.0.0' } },
    });
    assert.equal(stale.status, 422, 'the catalog moved on: the platform must fetch it again');
    assertOsbError(stale.body, 'MaintenanceInfoConflict');
    assert.equal(await h.dump(), before);

    // What an operator sees (sf service): the version and image it runs and the ones offered now.
    const detail = await h.call('GET', `/sf/v1/instances/${id}`);
    assert.equal(detail.status, 200, detail.text);
    assert.deepEqual((detail.body as { maintenance: unknown }).maintenance, {
      running: '1.0.0',
      offered: version,
      runningImage: image,
      offeredImage: image,
      upgradeAvailable: true,
      reason: `runs maintenance version 1.0.0; its plan offers ${version}`,
    });
    const current = uniqueId('cur');
    assert.equal((await h.provision(current)).status, 202);
    await h.markReady(current);
    const currentDetail = await h.call('GET', `/sf/v1/instances/${current}`);
    assert.deepEqual((currentDetail.body as { maintenance: unknown }).maintenance, {
      running: version,
      offered: version,
      runningImage: image,
      offeredImage: image,
      upgradeAvailable: false,
      reason: null,
    });
  });
});
