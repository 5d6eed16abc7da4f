import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BackupRecord, json, metricFamilies, sampleValue, scrapeMetrics, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const instancePath = '/v2/service_instances/:instance_id';

describe('broker metrics', () => {
  let h: Harness;
  let url: string;
  before(async () => {
    h = await startHarness({ metrics: { port: 0 } });
    url = (h.broker as { metricsUrl?: string }).metricsUrl as string;
  });
  after(async () => {
    await h?.close();
  });

  it('serves /metrics on its own loopback listener, not on the API port', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.notEqual(new URL(url).port, new URL(h.broker.url).port);
    const { text } = await scrapeMetrics(url);
    for (const family of [
      'sf_broker_requests_total',
      'sf_broker_request_duration_seconds',
      'process_cpu_seconds_total',
    ]) {
      assert.ok(metricFamilies(text).has(family), family);
    }
  });

  it('counts requests by route template and status, and times operations by type and result', async () => {
    const id = uniqueId('metrics');
    assert.equal((await h.provision(id)).status, 202);
    assert.equal((await h.call('GET', `/v2/service_instances/${uniqueId('absent')}/last_operation`)).status, 404);
    // The controller's part, done by hand: the provision ends, later a deprovision too.
    await h.markReady(id);
    // The agent's part: a backup completed two hours ago.
    const backup: BackupRecord = {
      id: 'b-1',
      instanceId: id,
      instanceName: id,
      serviceName: 'postgres',
      planName: 'small',
      state: 'completed',
      message: '',
      requestedBy: 'ops',
      requestedAt: new Date(Date.now() - 7200_000).toISOString(),
      completedAt: new Date(Date.now() - 7200_000).toISOString(),
    };
    await h.client.put(h.keys.backup(id, 'b-1')).value(json(backup)).exec();
    await waitFor(
      async () => sampleValue((await scrapeMetrics(url)).samples, 'sf_backup_age_seconds', { instance: id }),
      {
        description: 'the backup age served',
        timeoutMs: 10_000,
      },
    );
    const backupAge = sampleValue((await scrapeMetrics(url)).samples, 'sf_backup_age_seconds', {
      instance: id,
    }) as number;
    assert.ok(backupAge >= 7200 && backupAge < 7300, `backup age ${backupAge} s`);
    const deleting = await h.call(
      'DELETE',
      `/v2/service_instances/${id}?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=${smallPlanId}`,
    );
    assert.equal(deleting.status, 202);
    await h.deleteLikeController(id);

    const count = (type: string, result: string) => async () =>
      sampleValue((await scrapeMetrics(url)).samples, 'sf_broker_operation_duration_seconds_count', { type, result });
    await waitFor(async () => (await count('provision', 'succeeded')()) === 1, {
      description: 'the provision timed',
      timeoutMs: 10_000,
    });
    await waitFor(async () => (await count('deprovision', 'succeeded')()) === 1, {
      description: 'the deprovision timed',
      timeoutMs: 10_000,
    });

    const { samples } = await scrapeMetrics(url);
    const requests = (method: string, route: string, status: string) =>
      sampleValue(samples, 'sf_broker_requests_total', { method, route, status });
    assert.equal(requests('PUT', instancePath, '202'), 1);
    assert.equal(requests('DELETE', instancePath, '202'), 1);
    assert.equal(requests('GET', `${instancePath}/last_operation`, '404'), 1);
    // Raw URLs (instance ids) never become labels: the set of label values stays bounded.
    assert.ok(!samples.some((s) => s.labels.route?.includes(id)));
  });
});
