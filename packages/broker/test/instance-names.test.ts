import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, operatorLogin, provisionBody, viewerLogin } from '@service-foundry/test-support/broker-calls';
import type { InstanceDetail, InstanceSummary } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

const put = (id: string) => `/v2/service_instances/${id}?accepts_incomplete=true`;

/** A Cloud Foundry provision body: the scope both top-level and in the context, as CF sends it. */
function cfBody(org: string, space: string, name: string) {
  return provisionBody({
    organization_guid: org,
    space_guid: space,
    context: { platform: 'cloudfoundry', organization_guid: org, space_guid: space, instance_name: name },
  });
}

describe('broker: instance names are unique per organization and space', () => {
  let h: Harness;
  const inSpaceA = uniqueId('a');
  const inSpaceB = uniqueId('b');
  before(async () => {
    h = await startHarness();
    assert.equal((await h.call('PUT', put(inSpaceA), { body: cfBody('org-1', 'space-a', 'orders') })).status, 202);
  });
  after(async () => {
    await h?.close();
  });

  it('the same name in another space is a different instance', async () => {
    const res = await h.call('PUT', put(inSpaceB), { body: cfBody('org-2', 'space-b', 'orders') });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual((await h.readInstance(inSpaceB))?.scope, {
      organization: 'org-2',
      space: 'space-b',
    });
  });

  it('the same name in the same space is a 409 that never names the other instance', async () => {
    const before = await h.dump();
    const res = await h.call('PUT', put(uniqueId('c')), { body: cfBody('org-1', 'space-a', 'orders') });
    assert.equal(res.status, 409);
    assertOsbError(res.body, 'Conflict');
    assert.match(
      (res.body as { description: string }).description,
      /"orders" already exists in organization "org-1", space "space-a"/,
    );
    assert.ok(!res.text.includes(inSpaceA) && !res.text.includes(inSpaceB), `no instance id in ${res.text}`);
    assert.equal(await h.dump(), before);
  });

  it('a repeated PUT of an id from another space is a 409, not the other tenant’s instance', async () => {
    const res = await h.call('PUT', put(inSpaceA), { body: cfBody('org-2', 'space-b', 'orders') });
    assert.equal(res.status, 409);
    assert.match((res.body as { description: string }).description, /different service, plan, parameters or space/);
    const same = await h.call('PUT', put(inSpaceA), { body: cfBody('org-1', 'space-a', 'orders') });
    assert.equal(same.status, 202, 'the identical repeat is still accepted');
  });

  it('takes the scope from the top-level fields only: a platform sending it only in the context gets 400', async () => {
    const cf = uniqueId('ctx');
    const body = cfBody('org-3', 'space-c', 'orders');
    delete body.organization_guid;
    delete body.space_guid;
    const before = await h.dump();
    const onlyContext = await h.call('PUT', put(cf), { body });
    assert.equal(onlyContext.status, 400, 'organization_guid and space_guid are REQUIRED (OSB 2.17)');
    assertOsbError(onlyContext.body, 'BadRequest');
    const k8s = await h.call('PUT', put(uniqueId('k8s')), {
      body: {
        service_id: body.service_id,
        plan_id: body.plan_id,
        context: { platform: 'kubernetes', clusterid: 'c-1', namespace: 'shop', instance_name: 'orders' },
      },
    });
    assert.equal(k8s.status, 400, k8s.text);
    assert.equal(await h.dump(), before);
    const scoped = await h.call('PUT', put(cf), {
      body: { ...body, organization_guid: 'c-1', space_guid: 'shop' },
    });
    assert.equal(scoped.status, 202, scoped.text);
    assert.deepEqual((await h.readInstance(cf))?.scope, { organization: 'c-1', space: 'shop' });
  });

  it('refuses half a scope or a malformed one with 400', async () => {
    const before = await h.dump();
    const half = provisionBody();
    delete half.space_guid;
    const contextHalf = provisionBody({ context: { organization_guid: 'o' } });
    delete contextHalf.organization_guid;
    delete contextHalf.space_guid;
    for (const body of [
      half,
      contextHalf,
      provisionBody({ organization_guid: 'o\u0000', space_guid: 's' }),
      provisionBody({ organization_guid: 'o'.repeat(256), space_guid: 's' }),
    ]) {
      const res = await h.call('PUT', put(uniqueId('half')), { body });
      assert.equal(res.status, 400, JSON.stringify(body).slice(0, 100));
      assertOsbError(res.body, 'BadRequest');
    }
    assert.equal(await h.dump(), before);
  });

  it('operators resolve a name held in two spaces to a 409 listing the spaces, and ids always', async () => {
    const res = await h.call('GET', '/sf/v1/instances/orders');
    assert.equal(res.status, 409, res.text);
    assertOsbError(res.body, 'Conflict');
    const description = (res.body as { description: string }).description;
    assert.match(description, /instances are named "orders"/);
    assert.match(description, /organization "org-1", space "space-a" \(id /);
    assert.match(description, /organization "org-2", space "space-b" \(id /);
    assert.match(description, /by its id/);
    const byId = await h.call('GET', `/sf/v1/instances/${inSpaceB}`, { auth: viewerLogin });
    assert.equal(byId.status, 200);
    assert.deepEqual((byId.body as InstanceDetail).scope, { organization: 'org-2', space: 'space-b' });
    // Every operator route that names an instance resolves it the same way.
    const relocate = await h.call('POST', '/sf/v1/instances/orders/relocate', { body: {} });
    assert.equal(relocate.status, 409);
    assert.match((relocate.body as { description: string }).description, /instances are named "orders"/);
    const backups = await h.call('GET', '/sf/v1/instances/orders/backups');
    assert.equal(backups.status, 409);
  });

  it('a name used once resolves by name; instances sf creates live in the operators scope', async () => {
    const id = uniqueId('ops');
    const { organization_guid: _o, space_guid: _s, ...bare } = provisionBody({ context: { instance_name: 'billing' } });
    const created = await h.call('PUT', put(id), { auth: operatorLogin, body: bare });
    assert.equal(created.status, 202, created.text);
    await h.markReady(id);
    const res = await h.call('GET', '/sf/v1/instances/billing');
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as InstanceDetail).id, id);
    assert.equal((res.body as InstanceDetail).scope, null);
    // The same name again from sf: a conflict in the operators' scope, without the holder's id.
    const again = await h.call('PUT', put(uniqueId('ops')), { auth: operatorLogin, body: bare });
    assert.equal(again.status, 409);
    assert.match((again.body as { description: string }).description, /already exists in the operators' scope/);
    assert.ok(!again.text.includes(id));
    // And a platform may use the name in its own space.
    const platform = await h.call('PUT', put(uniqueId('cf')), {
      body: cfBody('org-1', 'space-a', 'billing'),
    });
    assert.equal(platform.status, 202);
    const listed = (await h.call('GET', '/sf/v1/instances')).body as InstanceSummary[];
    assert.deepEqual(
      listed.filter((i) => i.name === 'billing').map((i) => i.scope),
      [null, { organization: 'org-1', space: 'space-a' }],
    );
  });
});
