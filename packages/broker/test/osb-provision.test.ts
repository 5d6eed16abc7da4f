import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Catalog } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  operatorLogin,
  postgresServiceId,
  provisionBody,
  smallPlanId,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const path = (id: string) => `/v2/service_instances/${id}`;
const asyncPath = (id: string) => `${path(id)}?accepts_incomplete=true`;

/** OSB v2.17 "Provisioning" and "Fetching a Service Instance". */
describe('OSB: provisioning', () => {
  let h: Harness;
  let version: string;
  before(async () => {
    h = await startHarness();
    const plan = (await Catalog.load()).byServiceId(postgresServiceId)?.osb.plans.find((p) => p.id === smallPlanId);
    assert.ok(plan?.maintenance_info);
    version = plan.maintenance_info.version;
  });
  after(async () => {
    await h?.close();
  });

  it('refuses a provision without organization_guid or space_guid with 400 (REQUIRED), changing nothing', async () => {
    const before = await h.dump();
    const noOrg = provisionBody({ context: { platform: 'cloudfoundry', organization_guid: 'o', space_guid: 's' } });
    delete noOrg.organization_guid;
    const noSpace = provisionBody();
    delete noSpace.space_guid;
    const neither = provisionBody({ context: { platform: 'cloudfoundry', organization_guid: 'o', space_guid: 's' } });
    delete neither.organization_guid;
    delete neither.space_guid;
    for (const [body, named] of [
      [noOrg, /organization_guid is required/],
      [noSpace, /space_guid is required/],
      [neither, /organization_guid and space_guid are required/],
      [provisionBody({ organization_guid: '' }), /organization_guid/],
    ] as const) {
      const res = await h.call('PUT', asyncPath(uniqueId('scope')), { body });
      assert.equal(res.status, 400, res.text);
      assertOsbError(res.body, 'BadRequest');
      assert.match((res.body as { description: string }).description, named);
    }
    assert.equal(await h.dump(), before);
  });

  it('lets only an operator login (not a platform) provision without a scope: the operators’ own', async () => {
    const id = uniqueId('ops');
    const body = { service_id: postgresServiceId, plan_id: smallPlanId };
    const res = await h.call('PUT', asyncPath(id), { body, auth: operatorLogin });
    assert.equal(res.status, 202, res.text);
    assert.equal((await h.readInstance(id))?.scope, undefined);
  });

  it('accepts the plan’s maintenance_info and records the version the instance runs', async () => {
    const id = uniqueId('mi');
    const res = await h.call('PUT', asyncPath(id), {
      body: provisionBody({ maintenance_info: { version, description: 'ignored: only the version counts' } }),
    });
    assert.equal(res.status, 202, res.text);
    assert.equal((await h.readInstance(id))?.maintenanceVersion, version);
  });

  it('refuses another maintenance_info.version with 422 MaintenanceInfoConflict, changing nothing', async () => {
    const before = await h.dump();
    for (const other of ['0.0.1', `${version}-rc.1`, '99.0.0']) {
      const res = await h.call('PUT', asyncPath(uniqueId('mic')), {
        body: provisionBody({ maintenance_info: { version: other } }),
      });
      assert.equal(res.status, 422, res.text);
      assertOsbError(res.body, 'MaintenanceInfoConflict');
      assert.match((res.body as { description: string }).description, /fetch the catalog again/);
    }
    const malformed = await h.call('PUT', asyncPath(uniqueId('mic')), {
      body: provisionBody({ maintenance_info: { description: 'no version' } }),
    });
    assert.equal(malformed.status, 400);
    assert.equal(await h.dump(), before);
  });

  it('ignores maintenance_info from a platform older than 2.15, which does not know the field', async () => {
    const id = uniqueId('old');
    const res = await h.call('PUT', asyncPath(id), {
      body: provisionBody({ maintenance_info: { version: '0.0.1' } }),
      apiVersion: '2.14',
    });
    assert.equal(res.status, 202, res.text);
  });

  it('answers a re-sent PUT: 202 with the same operation while provisioning, 200 once ready, 409 if different', async () => {
    const id = uniqueId('again');
    const body = provisionBody({ parameters: { local_io: 'batched' } });
    const first = await h.call('PUT', asyncPath(id), { body });
    assert.equal(first.status, 202);
    const { operation } = first.body as { operation: string };
    const repeat = await h.call('PUT', asyncPath(id), { body });
    assert.equal(repeat.status, 202, 'MUST be 202, not 200, while not fully provisioned');
    assert.deepEqual(repeat.body, { operation }, 'the operation of the original request');
    const synchronous = await h.call('PUT', path(id), { body });
    assert.equal(synchronous.status, 422, 'not complete yet: a synchronous answer is impossible');
    assertOsbError(synchronous.body, 'AsyncRequired');
    for (const different of [
      provisionBody({ parameters: { local_io: 'fsync' } }),
      provisionBody({ parameters: { local_io: 'batched' }, space_guid: 'other-space' }),
    ]) {
      const res = await h.call('PUT', asyncPath(id), { body: different });
      assert.equal(res.status, 409, 'same id, different attributes (MUST)');
      assertOsbError(res.body, 'Conflict');
    }
    await h.markReady(id);
    const ready = await h.call('PUT', asyncPath(id), { body });
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, {});
    const readySync = await h.call('PUT', path(id), { body });
    assert.equal(readySync.status, 200, 'nothing to do: complete at once, so no accepts_incomplete needed');
  });

  it('answers 422 AsyncRequired to a new provision without accepts_incomplete=true, changing nothing', async () => {
    const before = await h.dump();
    for (const query of ['', '?accepts_incomplete=false', '?accepts_incomplete=yes']) {
      const res = await h.call('PUT', `${path(uniqueId('sync'))}${query}`, { body: provisionBody() });
      assert.equal(res.status, 422, query);
      assertOsbError(res.body, 'AsyncRequired');
    }
    assert.equal(await h.dump(), before);
  });

  it('answers 422 ConcurrencyError to a PUT while the instance is being deprovisioned', async () => {
    const id = uniqueId('busy');
    assert.equal((await h.call('PUT', asyncPath(id), { body: provisionBody() })).status, 202);
    const deleting = await h.call('DELETE', `${asyncPath(id)}&service_id=${postgresServiceId}&plan_id=${smallPlanId}`);
    assert.equal(deleting.status, 202);
    const res = await h.call('PUT', asyncPath(id), { body: provisionBody() });
    assert.equal(res.status, 422);
    assertOsbError(res.body, 'ConcurrencyError');
  });

  it('fetches an instance only once provisioned: 404 before, then its plan, parameters and maintenance_info', async () => {
    const id = uniqueId('fetch');
    assert.equal((await h.call('GET', path(uniqueId('none')))).status, 404, 'does not exist (MUST)');
    assert.equal((await h.call('PUT', asyncPath(id), { body: provisionBody() })).status, 202);
    const early = await h.call('GET', path(id));
    assert.equal(early.status, 404, 'provisioning still in progress (MUST)');
    assertOsbError(early.body, 'NotFound');
    await h.markReady(id);
    const fetched = await h.call('GET', `${path(id)}?service_id=${postgresServiceId}&plan_id=${smallPlanId}`);
    assert.equal(fetched.status, 200, 'available as soon as last_operation says succeeded (MUST)');
    const body = fetched.body as Record<string, unknown>;
    assert.equal(body.service_id, postgresServiceId);
    assert.equal(body.plan_id, smallPlanId);
    assert.deepEqual(body.parameters, {});
    assert.equal((body.maintenance_info as { version: string }).version, version);
    const old = await h.call('GET', path(id), { apiVersion: '2.14' });
    assert.equal(old.status, 200);
    assert.equal((old.body as Record<string, unknown>).maintenance_info, undefined, 'not for a 2.14 platform');
    const wrongHint = await h.call('GET', `${path(id)}?plan_id=other-plan`);
    assert.equal(wrongHint.status, 400);
  });
});
