import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertOsbError,
  password,
  postgresServiceId,
  smallPlanId,
  username,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

describe('broker: catalog, authentication, API version', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('serves the OSB catalog from services-catalog', async () => {
    const res = await h.call('GET', '/v2/catalog');
    assert.equal(res.status, 200);
    const { services } = res.body as { services: Array<Record<string, unknown>> };
    const postgres = services.find((s) => s.id === postgresServiceId);
    assert.ok(postgres, 'postgres is in the catalog');
    assert.equal(postgres.name, 'postgres');
    assert.equal(postgres.bindable, true);
    const plans = postgres.plans as Array<Record<string, unknown>>;
    assert.equal(plans[0]?.id, smallPlanId);
    assert.ok(plans[0]?.schemas, 'plan schemas are served');
  });

  it('answers 401 with a Basic challenge when credentials are missing', async () => {
    const res = await h.call('GET', '/v2/catalog', { auth: null });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="service-foundry"');
    assertOsbError(res.body, 'Unauthorized');
  });

  it('answers 401 for a wrong password, a wrong user and a malformed header', async () => {
    for (const auth of [
      { user: username, password: `${password}x` },
      { user: 'someone', password },
      { user: username, password: '' },
    ]) {
      const res = await h.call('GET', '/v2/catalog', { auth });
      assert.equal(res.status, 401, JSON.stringify(auth));
      assertOsbError(res.body, 'Unauthorized');
    }
    const res = await h.call('GET', '/v2/catalog', { auth: null, headers: { authorization: 'Bearer x' } });
    assert.equal(res.status, 401);
  });

  it('protects the operator API and unknown routes too, but not /healthz', async () => {
    assert.equal((await h.call('GET', '/sf/v1/instances', { auth: null })).status, 401);
    assert.equal((await h.call('GET', '/nothing-here', { auth: null })).status, 401);
    const health = await h.call('GET', '/healthz', { auth: null, apiVersion: null });
    assert.equal(health.status, 200);
  });

  it('requires X-Broker-API-Version 2.x on /v2 routes: 412 otherwise', async () => {
    const missing = await h.call('GET', '/v2/catalog', { apiVersion: null });
    assert.equal(missing.status, 412);
    assertOsbError(missing.body, 'PreconditionFailed');
    assert.match((missing.body as { description: string }).description, /X-Broker-API-Version/);
    for (const version of ['3.0', '1.14', 'two', '']) {
      const res = await h.call('GET', '/v2/catalog', { apiVersion: version });
      assert.equal(res.status, 412, `version ${JSON.stringify(version)}`);
      assertOsbError(res.body, 'PreconditionFailed');
    }
    assert.equal((await h.call('GET', '/v2/catalog', { apiVersion: '2.13' })).status, 200);
  });

  it('does not need the version header on the operator API', async () => {
    const res = await h.call('GET', '/sf/v1/instances', { apiVersion: null });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, []);
  });

  it('answers unknown routes with an OSB 404 body', async () => {
    const res = await h.call('GET', '/v2/nothing');
    assert.equal(res.status, 404);
    assertOsbError(res.body, 'NotFound');
  });

  it('echoes X-Broker-API-Request-Identity', async () => {
    const res = await h.call('GET', '/v2/catalog', {
      headers: {
        'x-broker-api-request-identity': 'req-42',
        'x-broker-api-originating-identity': 'cloudfoundry eyJ1c2VyX2lkIjoiYSJ9',
      },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-broker-api-request-identity'), 'req-42');
  });
});
