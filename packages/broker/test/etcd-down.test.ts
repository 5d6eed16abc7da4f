import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

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
    const list = await h.call('GET', '/sf/v1/instances');
    assert.equal(list.status, 503, list.text);
    assertOsbError(list.body, 'EtcdUnavailable');
    const put = await h.provision(uniqueId('x'));
    assert.equal(put.status, 503);
    assertOsbError(put.body, 'EtcdUnavailable');
    // Bad input is still judged before etcd is needed.
    const bad = await h.provision(uniqueId('x'), { parameters: { foo: 1 } });
    assert.equal(bad.status, 400);
  });
});
