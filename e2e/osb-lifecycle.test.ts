import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { osb, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { containersOf, volumesOf } from '@service-foundry/test-support/docker';
import { psql } from '@service-foundry/test-support/psql';

interface Catalog {
  services: Array<{ id: string; name: string; plans: Array<{ id: string; name: string }> }>;
}

describe('OSB lifecycle on a three-node platform: provision, bind, psql through the router, unbind, deprovision', () => {
  let cluster: TestCluster;
  let serviceId = '';
  let planId = '';
  const instanceId = randomUUID();
  const bindingId = randomUUID();
  let credentials: { host: string; port: number; username: string; password: string; database: string; uri: string };

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
    const { body } = await osb(cluster, 'GET', '/v2/catalog');
    const postgres = (body as unknown as Catalog).services.find((s) => s.name === 'postgres');
    assert.ok(postgres, 'the catalog offers postgres');
    serviceId = postgres.id;
    planId = postgres.plans[0]?.id ?? '';
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('provisions asynchronously and reports succeeded through last_operation', async () => {
    const started = Date.now();
    const res = await osb(cluster, 'PUT', `/v2/service_instances/${instanceId}?accepts_incomplete=true`, {
      body: {
        service_id: serviceId,
        plan_id: planId,
        context: { platform: 'e2e', instance_name: 'e2e-db' },
        parameters: {},
      },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(typeof res.body.operation, 'string');
    const state = await waitFor(
      async () => {
        const op = await osb(cluster, 'GET', `/v2/service_instances/${instanceId}/last_operation`);
        assert.equal(op.status, 200);
        return op.body.state === 'in progress' ? undefined : String(op.body.state);
      },
      { description: 'provision to finish', timeoutMs: 180_000, intervalMs: 250 },
    );
    assert.equal(state, 'succeeded');
    console.log(`# create-service to succeeded: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const containers = await containersOf(instanceId);
    assert.equal(containers.length, 1);
    assert.equal(containers[0]?.State, 'running');
    assert.equal(containers[0]?.Labels['sf.cluster'], cluster.clusterId);
  });

  it('binds: a real Postgres role, with credentials that point at the router', async () => {
    const res = await osb(cluster, 'PUT', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`, {
      body: { service_id: serviceId, plan_id: planId, context: { platform: 'e2e', binding_name: 'app' } },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    credentials = res.body.credentials as typeof credentials;
    assert.equal(credentials.host, '127.0.0.1');
    assert.ok(
      credentials.port >= cluster.routerPorts.min && credentials.port <= cluster.routerPorts.max,
      'router port',
    );
    const replicaPorts = (await containersOf(instanceId)).flatMap((c) => c.Ports.map((p) => p.PublicPort));
    assert.ok(!replicaPorts.includes(credentials.port), 'the credentials name the router, not the container');
    const again = await osb(cluster, 'PUT', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`, {
      body: { service_id: serviceId, plan_id: planId, context: { platform: 'e2e', binding_name: 'app' } },
    });
    assert.equal(again.status, 200, 'an identical bind is idempotent');
    assert.deepEqual(again.body.credentials, credentials);
  });

  it('psql through the router: create a table, write and read a row', async () => {
    const write = await psql(
      credentials.uri,
      "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'persisted through the router');",
    );
    assert.ok(write.ok, write.err);
    const read = await psql(credentials.uri, 'SELECT body FROM notes WHERE id = 1');
    assert.equal(read.out, 'persisted through the router');
    const wrong = await psql(credentials.uri.replace(credentials.password, 'not-the-password'), 'SELECT 1');
    assert.equal(wrong.ok, false);
    assert.match(wrong.err, /password authentication failed/);
  });

  it('unbinds: the role is gone, the data stays', async () => {
    const res = await osb(
      cluster,
      'DELETE',
      `/v2/service_instances/${instanceId}/service_bindings/${bindingId}?service_id=${serviceId}&plan_id=${planId}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const old = await psql(credentials.uri, 'SELECT 1');
    assert.equal(old.ok, false, 'the unbound credentials no longer work');
    const second = randomUUID();
    const rebind = await osb(cluster, 'PUT', `/v2/service_instances/${instanceId}/service_bindings/${second}`, {
      body: { service_id: serviceId, plan_id: planId },
    });
    assert.equal(rebind.status, 201);
    const uri = (rebind.body.credentials as { uri: string }).uri;
    const read = await psql(uri, 'SELECT body FROM notes WHERE id = 1');
    assert.equal(read.out, 'persisted through the router', 'a new binding sees the data the old one wrote');
    const gone = await osb(
      cluster,
      'DELETE',
      `/v2/service_instances/${instanceId}/service_bindings/${bindingId}?service_id=${serviceId}&plan_id=${planId}`,
    );
    assert.equal(gone.status, 410);
  });

  it('deprovisions: last_operation goes to 410 Gone and the containers and volumes are removed', async () => {
    const volumes = await volumesOf(instanceId);
    assert.equal(volumes.length, 1);
    const res = await osb(
      cluster,
      'DELETE',
      `/v2/service_instances/${instanceId}?service_id=${serviceId}&plan_id=${planId}&accepts_incomplete=true`,
    );
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitFor(
      async () => (await osb(cluster, 'GET', `/v2/service_instances/${instanceId}/last_operation`)).status === 410,
      {
        description: 'deprovision to finish',
        timeoutMs: 120_000,
        intervalMs: 250,
      },
    );
    assert.deepEqual(await containersOf(instanceId), []);
    assert.deepEqual(await volumesOf(instanceId), []);
    const nodes = await osb(cluster, 'GET', '/sf/v1/nodes');
    for (const node of nodes.body as unknown as Array<{ allocated: { cpuMillis: number } }>) {
      assert.equal(node.allocated.cpuMillis, 0, 'capacity is released');
    }
  });
});
