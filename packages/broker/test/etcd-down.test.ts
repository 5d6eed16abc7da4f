import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertOsbError, call, type Harness, provisionBody, startHarness, uniqueId } from './helpers.js';

describe('broker: etcd unreachable', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    await h.etcd.stop();
  });
  after(async () => {
    await h?.close();
  });

  it('answers 503 with an OSB body instead of hanging or crashing', async () => {
    const list = await call(h.broker.url, 'GET', '/sf/v1/instances');
    assert.equal(list.status, 503, list.text);
    assertOsbError(list.body, 'EtcdUnavailable');
    const put = await call(h.broker.url, 'PUT', `/v2/service_instances/${uniqueId('x')}?accepts_incomplete=true`, {
      body: provisionBody(),
    });
    assert.equal(put.status, 503);
    assertOsbError(put.body, 'EtcdUnavailable');
    // Bad input is still judged before etcd is needed.
    const bad = await call(h.broker.url, 'PUT', `/v2/service_instances/${uniqueId('x')}?accepts_incomplete=true`, {
      body: provisionBody({ parameters: { foo: 1 } }),
    });
    assert.equal(bad.status, 400);
  });
});
