import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { osb, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { docker } from '@service-foundry/test-support/docker';

describe('bad input gets a clear 4xx and creates nothing (I6)', () => {
  let cluster: TestCluster;
  let serviceId = '';
  let planId = '';

  before(async () => {
    cluster = await startCluster(1, { sharedEngine: true, oneSchedulerOneBroker: true });
    const { body } = await osb(cluster, 'GET', '/v2/catalog');
    const postgres = (body.services as Array<{ id: string; name: string; plans: Array<{ id: string }> }>).find(
      (s) => s.name === 'postgres',
    );
    serviceId = postgres?.id ?? '';
    planId = postgres?.plans[0]?.id ?? '';
  });
  after(async () => {
    await cluster?.destroy();
  });

  const cases: Array<{
    name: string;
    status: number;
    request: (id: string) => Parameters<typeof osb>[3] & { path?: string };
  }> = [
    { name: 'malformed JSON', status: 400, request: () => ({ rawBody: '{"service_id": ' }) },
    {
      name: 'unknown plan',
      status: 400,
      request: () => ({ body: { service_id: serviceId, plan_id: 'no-such-plan' } }),
    },
    {
      name: 'unknown service',
      status: 400,
      request: () => ({ body: { service_id: 'no-such-service', plan_id: planId } }),
    },
    {
      name: 'parameter outside the plan schema',
      status: 400,
      request: () => ({ body: { service_id: serviceId, plan_id: planId, parameters: { replicas: 5 } } }),
    },
    {
      name: 'parameter the plan does not know',
      status: 400,
      request: () => ({ body: { service_id: serviceId, plan_id: planId, parameters: { shared_buffers: '1TB' } } }),
    },
    {
      name: 'missing X-Broker-API-Version',
      status: 412,
      request: () => ({ body: { service_id: serviceId, plan_id: planId }, version: null }),
    },
    {
      name: 'wrong password',
      status: 401,
      request: () => ({ body: { service_id: serviceId, plan_id: planId }, auth: 'admin:wrong-password' }),
    },
    {
      name: 'no credentials',
      status: 401,
      request: () => ({ body: { service_id: serviceId, plan_id: planId }, auth: null }),
    },
    {
      name: 'synchronous request for an async service',
      status: 422,
      request: (id) => ({ body: { service_id: serviceId, plan_id: planId }, path: `/v2/service_instances/${id}` }),
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const id = randomUUID();
      const { path, ...request } = c.request(id);
      const res = await osb(cluster, 'PUT', path ?? `/v2/service_instances/${id}?accepts_incomplete=true`, request);
      assert.equal(res.status, c.status, JSON.stringify(res.body));
      if (c.status !== 401) {
        assert.equal(typeof res.body.description, 'string', 'an OSB error body with a description');
        assert.ok(String(res.body.description).length > 0);
      }
      const instances = await osb(cluster, 'GET', '/sf/v1/instances');
      assert.deepEqual(instances.body, [], 'no instance was recorded');
      const last = await osb(cluster, 'GET', `/v2/service_instances/${id}/last_operation`);
      assert.equal(last.status, 404, 'an instance that never existed is not found (OSB 2.17)');
    });
  }

  it('leaves no container behind', async () => {
    const containers = await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`sf.cluster=${cluster.clusterId}`] }),
    });
    assert.deepEqual(containers, []);
  });
});
