import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

/**
 * OSB v2.17 "Headers", "Platform to Service Broker Authentication", "Service Broker Errors"
 * and "Content Type", one rule per test (docs/osb.md maps each to the spec).
 */
describe('OSB: headers, errors, content type', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('serves X-Broker-API-Version 2.11 to 2.17, and a newer 2.x as 2.17', async () => {
    for (let minor = 11; minor <= 17; minor++) {
      const res = await h.call('GET', '/v2/catalog', { apiVersion: `2.${minor}` });
      assert.equal(res.status, 200, `2.${minor}: ${res.text}`);
    }
    const newer = await h.call('GET', '/v2/catalog', { apiVersion: '2.18' });
    assert.equal(newer.status, 200);
    assert.deepEqual(newer.body, (await h.call('GET', '/v2/catalog', { apiVersion: '2.17' })).body);
  });

  it('refuses a missing, older or malformed version with 412 naming the versions it serves', async () => {
    for (const apiVersion of [null, '2.10', '2.0', '1.17', '3.0', '2', '2.17.1', 'latest']) {
      const res = await h.call('GET', '/v2/catalog', { apiVersion });
      assert.equal(res.status, 412, `version ${JSON.stringify(apiVersion)}`);
      assertOsbError(res.body, 'PreconditionFailed');
      assert.match((res.body as { description: string }).description, /2\.11 to 2\.17/);
    }
  });

  it('echoes X-Broker-API-Request-Identity on answers and on errors (SHOULD)', async () => {
    const identity = 'e5c1ad0c-0a10-4d62-8e35-2ab2e1f4c07d';
    const headers = { 'x-broker-api-request-identity': identity };
    const ok = await h.call('GET', '/v2/catalog', { headers });
    assert.equal(ok.headers.get('x-broker-api-request-identity'), identity);
    const refused = await h.call('GET', '/v2/catalog', { headers, auth: null });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('x-broker-api-request-identity'), identity);
    const missing = await h.call('GET', `/v2/service_instances/${uniqueId('none')}/last_operation`, { headers });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-broker-api-request-identity'), identity);
  });

  it('accepts X-Broker-API-Originating-Identity on any request, with or without it', async () => {
    const identity = `cloudfoundry ${Buffer.from(JSON.stringify({ user_id: 'u-1' })).toString('base64')}`;
    const res = await h.call('GET', '/v2/catalog', { headers: { 'x-broker-api-originating-identity': identity } });
    assert.equal(res.status, 200);
  });

  it('authenticates every request with HTTP basic auth: 401 when it fails (MUST)', async () => {
    for (const [method, path] of [
      ['GET', '/v2/catalog'],
      ['PUT', `/v2/service_instances/${uniqueId('x')}?accepts_incomplete=true`],
      ['GET', `/v2/service_instances/${uniqueId('x')}/last_operation`],
    ] as const) {
      const res = await h.call(method, path, { auth: null, ...(method === 'PUT' ? { body: {} } : {}) });
      assert.equal(res.status, 401, `${method} ${path}`);
      assertOsbError(res.body, 'Unauthorized');
    }
  });

  it('answers every error with a CamelCase `error` and a non-empty `description` (MUST)', async () => {
    const id = uniqueId('err');
    const cases: Array<[string, string, Record<string, unknown>?]> = [
      ['PUT', `/v2/service_instances/${id}`, { service_id: postgresServiceId, plan_id: smallPlanId }],
      ['PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, { service_id: 'nope', plan_id: 'nope' }],
      ['GET', `/v2/service_instances/${id}`],
      ['PATCH', `/v2/service_instances/${id}`, { service_id: postgresServiceId }],
      ['DELETE', `/v2/service_instances/${id}?accepts_incomplete=true`],
      ['GET', '/v2/nowhere'],
    ];
    for (const [method, path, body] of cases) {
      const res = await h.call(method, path, body === undefined ? {} : { body });
      assert.ok(res.status >= 400, `${method} ${path}: ${res.status}`);
      const error = (res.body as { error: string }).error;
      assert.match(error, /^[A-Z][A-Za-z]+$/, `${method} ${path}: ${res.text}`);
      assertOsbError(res.body, error);
    }
  });

  it('answers with Content-Type: application/json (SHOULD), and refuses another body type with 400', async () => {
    const answers = [
      await h.call('GET', '/v2/catalog'),
      await h.call('GET', `/v2/service_instances/${uniqueId('x')}/last_operation`),
      await h.call(
        'DELETE',
        `/v2/service_instances/${uniqueId('x')}?service_id=${postgresServiceId}&plan_id=${smallPlanId}`,
      ),
    ];
    assert.deepEqual(
      answers.map((r) => r.status),
      [200, 404, 410],
    );
    for (const res of answers) assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const before = await h.dump();
    const form = await h.call('PUT', `/v2/service_instances/${uniqueId('x')}?accepts_incomplete=true`, {
      rawBody: 'service_id=x',
      contentType: 'application/x-www-form-urlencoded',
    });
    assert.equal(form.status, 400);
    assertOsbError(form.body, 'UnsupportedMediaType');
    assert.equal(await h.dump(), before);
  });

  it('ignores unknown top-level fields of a request (MUST NOT halt processing)', async () => {
    const res = await h.call('PUT', `/v2/service_instances/${uniqueId('ext')}?accepts_incomplete=true`, {
      body: {
        service_id: postgresServiceId,
        plan_id: smallPlanId,
        organization_guid: 'org',
        space_guid: 'space',
        x_vendor_extension: { anything: [1, 2, 3] },
      },
    });
    assert.equal(res.status, 202, res.text);
  });
});
