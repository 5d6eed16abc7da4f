import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  type CallOptions,
  postgresServiceId,
  provisionBody,
  smallPlanId,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

interface BadCase {
  name: string;
  method: string;
  path: () => string;
  options: () => CallOptions;
  status: number;
  error: string;
  /** Text the description must contain, so users learn what was wrong. */
  mentions?: RegExp;
}

describe('broker: bad input is refused with an OSB error and changes nothing in etcd (I6)', () => {
  let h: Harness;
  const existingId = uniqueId('existing');
  const provisioningId = uniqueId('provisioning');
  const freshId = uniqueId('fresh');
  const put = (id: string) => `/v2/service_instances/${id}?accepts_incomplete=true`;

  before(async () => {
    h = await startHarness();
    const body = provisionBody({ context: { instance_name: 'taken-name' }, parameters: { replicas: 1 } });
    assert.equal((await h.call('PUT', put(existingId), { body })).status, 202);
    await h.markReady(existingId);
    assert.equal((await h.call('PUT', put(provisioningId), { body: provisionBody() })).status, 202);
  });
  after(async () => {
    await h?.close();
  });

  const cases: BadCase[] = [
    {
      name: 'malformed JSON',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ rawBody: '{"service_id": ' }),
      status: 400,
      error: 'MalformedJson',
    },
    {
      name: 'body is an array',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ rawBody: '[1,2]' }),
      status: 400,
      error: 'BadRequest',
      mentions: /object/,
    },
    {
      name: 'body is a JSON string',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ rawBody: '"hello"' }),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'no body at all',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({}),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'text/plain body',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody(), contentType: 'text/plain' }),
      status: 400,
      error: 'UnsupportedMediaType',
    },
    {
      name: 'proto poisoning',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({
        rawBody: `{"service_id":"${postgresServiceId}","plan_id":"${smallPlanId}","__proto__":{"x":1}}`,
      }),
      status: 400,
      error: 'MalformedJson',
    },
    {
      name: 'missing service_id',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: { plan_id: smallPlanId } }),
      status: 400,
      error: 'BadRequest',
      mentions: /service_id/,
    },
    {
      name: 'service_id is a number',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ service_id: 42 }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /service_id/,
    },
    {
      name: 'unknown service',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ service_id: 'no-such-service' }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /no-such-service/,
    },
    {
      name: 'unknown plan',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ plan_id: 'no-such-plan' }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /no-such-plan/,
    },
    {
      name: 'parameter outside the plan schema (replicas 5)',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ parameters: { replicas: 5 } }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /replicas must be <= 1/,
    },
    {
      name: 'unknown parameter (foo)',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ parameters: { foo: 1 } }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /unknown field "foo"/,
    },
    {
      name: 'parameter of the wrong type is not coerced ("1")',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ parameters: { replicas: '1' } }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /replicas must be integer/,
    },
    {
      name: 'parameters not an object',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ parameters: [1] }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /parameters/,
    },
    {
      name: 'context.instance_name not a string',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ context: { instance_name: 7 } }) }),
      status: 400,
      error: 'BadRequest',
      mentions: /instance_name/,
    },
    {
      name: 'missing accepts_incomplete',
      method: 'PUT',
      path: () => `/v2/service_instances/${freshId}`,
      options: () => ({ body: provisionBody() }),
      status: 422,
      error: 'AsyncRequired',
      mentions: /accepts_incomplete=true/,
    },
    {
      name: 'accepts_incomplete=false',
      method: 'PUT',
      path: () => `/v2/service_instances/${freshId}?accepts_incomplete=false`,
      options: () => ({ body: provisionBody() }),
      status: 422,
      error: 'AsyncRequired',
    },
    {
      name: 'instance id that is not a key segment',
      method: 'PUT',
      path: () => put('-starts-with-dash'),
      options: () => ({ body: provisionBody() }),
      status: 400,
      error: 'BadRequest',
      mentions: /instance id/,
    },
    {
      name: 'instance id with an encoded slash',
      method: 'PUT',
      path: () => put('a%2F..%2Fsecrets'),
      options: () => ({ body: provisionBody() }),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'instance id too long',
      method: 'PUT',
      path: () => put('a'.repeat(200)),
      options: () => ({ body: provisionBody() }),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'name already used by another instance',
      method: 'PUT',
      path: () => put(freshId),
      options: () => ({ body: provisionBody({ context: { instance_name: 'taken-name' } }) }),
      status: 409,
      error: 'Conflict',
      mentions: /taken-name/,
    },
    {
      name: 'same id, different parameters',
      method: 'PUT',
      path: () => put(existingId),
      options: () => ({ body: provisionBody({ context: { instance_name: 'taken-name' } }) }),
      status: 409,
      error: 'Conflict',
    },
    {
      name: 'deprovision without accepts_incomplete',
      method: 'DELETE',
      path: () => `/v2/service_instances/${existingId}?service_id=${postgresServiceId}&plan_id=${smallPlanId}`,
      options: () => ({}),
      status: 422,
      error: 'AsyncRequired',
    },
    {
      name: 'deprovision without plan_id',
      method: 'DELETE',
      path: () => `/v2/service_instances/${existingId}?accepts_incomplete=true&service_id=${postgresServiceId}`,
      options: () => ({}),
      status: 400,
      error: 'BadRequest',
      mentions: /plan_id/,
    },
    {
      name: 'deprovision naming another plan',
      method: 'DELETE',
      path: () =>
        `/v2/service_instances/${existingId}?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=other`,
      options: () => ({}),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'bind to an instance that is still provisioning',
      method: 'PUT',
      path: () => `/v2/service_instances/${provisioningId}/service_bindings/b1`,
      options: () => ({ body: { service_id: postgresServiceId, plan_id: smallPlanId } }),
      status: 422,
      error: 'ConcurrencyError',
      mentions: /provisioning/,
    },
    {
      name: 'bind to a missing instance',
      method: 'PUT',
      path: () => `/v2/service_instances/${freshId}/service_bindings/b1`,
      options: () => ({ body: { service_id: postgresServiceId, plan_id: smallPlanId } }),
      status: 404,
      error: 'NotFound',
    },
    {
      name: 'bind with another plan than the instance has',
      method: 'PUT',
      path: () => `/v2/service_instances/${existingId}/service_bindings/b1`,
      options: () => ({ body: { service_id: postgresServiceId, plan_id: 'other' } }),
      status: 400,
      error: 'BadRequest',
    },
    {
      name: 'bind with an unknown binding parameter',
      method: 'PUT',
      path: () => `/v2/service_instances/${existingId}/service_bindings/b1`,
      options: () => ({ body: { service_id: postgresServiceId, plan_id: smallPlanId, parameters: { admin: true } } }),
      status: 400,
      error: 'BadRequest',
      mentions: /unknown field "admin"/,
    },
    {
      name: 'binding id that is not a key segment',
      method: 'PUT',
      path: () => `/v2/service_instances/${existingId}/service_bindings/.hidden`,
      options: () => ({ body: { service_id: postgresServiceId, plan_id: smallPlanId } }),
      status: 400,
      error: 'BadRequest',
      mentions: /binding id/,
    },
    {
      name: 'fetch a binding that does not exist',
      method: 'GET',
      path: () => `/v2/service_instances/${existingId}/service_bindings/nope`,
      options: () => ({}),
      status: 404,
      error: 'NotFound',
    },
    {
      name: 'operator: unknown instance',
      method: 'GET',
      path: () => '/sf/v1/instances/nope',
      options: () => ({}),
      status: 404,
      error: 'NotFound',
    },
    {
      name: 'operator: bad events limit',
      method: 'GET',
      path: () => '/sf/v1/events?limit=0',
      options: () => ({}),
      status: 400,
      error: 'BadRequest',
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.error}`, async () => {
      const before = await h.dump();
      const res = await h.call(c.method, c.path(), c.options());
      assert.equal(res.status, c.status, res.text);
      assertOsbError(res.body, c.error);
      if (c.mentions) assert.match((res.body as { description: string }).description, c.mentions);
      assert.equal(await h.dump(), before, 'the keyspace is byte-for-byte unchanged');
    });
  }

  it('unbind and deprovision of things that do not exist answer 410 and change nothing', async () => {
    const before = await h.dump();
    const unbind = await h.call(
      'DELETE',
      `/v2/service_instances/${existingId}/service_bindings/nope?service_id=${postgresServiceId}&plan_id=${smallPlanId}`,
    );
    assert.equal(unbind.status, 410);
    assert.deepEqual(unbind.body, {});
    const deprovision = await h.call(
      'DELETE',
      `/v2/service_instances/${freshId}?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=${smallPlanId}`,
    );
    assert.equal(deprovision.status, 410);
    assert.equal(await h.dump(), before);
  });
});
