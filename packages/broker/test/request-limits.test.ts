import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  postgresServiceId,
  provisionBody,
  smallPlanId,
} from '@service-foundry/test-support/broker-calls';
import { jsonDepth } from '../src/request-limits.js';
import { type Harness, startHarness } from './helpers.js';

const put = (id: string) => `/v2/service_instances/${id}?accepts_incomplete=true`;

/** `{"a":{"a":…1…}}`, `levels` objects deep, as text (JSON.stringify would overflow the stack first). */
function nested(levels: number): string {
  return `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

function provisionText(fields: string): string {
  return `{"service_id":"${postgresServiceId}","plan_id":"${smallPlanId}","organization_guid":"o","space_guid":"s",${fields}}`;
}

describe('broker: size and depth limits on context, parameters and bodies', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('measures depth without recursion, even 30 000 levels deep', () => {
    assert.equal(jsonDepth(1), 0);
    assert.equal(jsonDepth({}), 1);
    assert.equal(jsonDepth({ a: [{ b: 1 }] }), 3);
    assert.equal(jsonDepth(JSON.parse(nested(30_000))), 30_000);
    assert.equal(jsonDepth(JSON.parse(nested(30_000)), 8), 9, 'stops counting past the limit');
  });

  it('a deeply nested context is a 400, the first time and the second, and stores nothing', async () => {
    const before = await h.dump();
    const id = uniqueId('deep');
    for (const levels of [9, 100, 5000, 5000, 10_000]) {
      const res = await h.call('PUT', put(id), { rawBody: provisionText(`"context":${nested(levels)}`) });
      const expected = levels > 15 ? /request body nests more than 16/ : /context nests more than 8/;
      assert.equal(res.status, 400, `${levels} levels: ${res.text}`);
      assertOsbError(res.body, 'BadRequest');
      assert.match((res.body as { description: string }).description, expected);
    }
    const params = await h.call('PUT', put(id), { rawBody: provisionText(`"parameters":${nested(9)}`) });
    assert.equal(params.status, 400);
    assert.match((params.body as { description: string }).description, /parameters nests more than 8/);
    assert.equal(await h.dump(), before);
  });

  it('a context or parameters over 16 KiB is a 413 and stores nothing; 8 levels and 16 KiB are accepted', async () => {
    const before = await h.dump();
    const big = await h.call('PUT', put(uniqueId('big')), {
      body: provisionBody({ context: { blob: 'x'.repeat(17_000) } }),
    });
    assert.equal(big.status, 413, big.text);
    assertOsbError(big.body, 'PayloadTooLarge');
    assert.match((big.body as { description: string }).description, /context is \d+ bytes of JSON; at most 16384/);
    const huge = await h.call('PUT', put(uniqueId('huge')), {
      body: provisionBody({ context: { blob: 'x'.repeat(900_000) } }),
    });
    assert.equal(huge.status, 413, 'a 900 KB context is refused with the body');
    assertOsbError(huge.body, 'PayloadTooLarge');
    const bigParams = await h.call('PUT', put(uniqueId('bigp')), {
      body: provisionBody({ parameters: { local_io: 'fsync', pad: 'é'.repeat(9000) } }),
    });
    assert.equal(bigParams.status, 413, 'bytes are UTF-8 bytes');
    assert.equal(await h.dump(), before);

    const id = uniqueId('edge');
    let deepest: Record<string, unknown> = { instance_name: 'edge-db' };
    for (let i = 0; i < 7; i++) deepest = { ...deepest, inner: { ...deepest } };
    const context = { ...deepest, pad: '' };
    context.pad = 'y'.repeat(16_384 - Buffer.byteLength(JSON.stringify(context)));
    assert.equal(Buffer.byteLength(JSON.stringify(context)), 16_384);
    const ok = await h.call('PUT', put(id), { body: provisionBody({ context }) });
    assert.equal(ok.status, 202, ok.text);
    assert.deepEqual((await h.readInstance(id))?.context, context);
  });

  it('binding bodies have the same limits', async () => {
    const id = uniqueId('bound');
    assert.equal((await h.call('PUT', put(id), { body: provisionBody() })).status, 202);
    await h.markReady(id);
    const before = await h.dump();
    const path = `/v2/service_instances/${id}/service_bindings/b-1`;
    const base = `"service_id":"${postgresServiceId}","plan_id":"${smallPlanId}"`;
    const deep = await h.call('PUT', path, { rawBody: `{${base},"context":${nested(5000)}}` });
    assert.equal(deep.status, 400);
    const wide = await h.call('PUT', path, {
      body: { service_id: postgresServiceId, plan_id: smallPlanId, context: { x: 'z'.repeat(20_000) } },
    });
    assert.equal(wide.status, 413);
    assert.equal(await h.dump(), before);
  });

  it('an operator body nesting too deep is a 400 too', async () => {
    const res = await h.call('POST', '/sf/v1/nodes/node-x/cordon', { rawBody: nested(3000) });
    assert.equal(res.status, 400);
    assert.match((res.body as { description: string }).description, /nests more than 16/);
  });
});
