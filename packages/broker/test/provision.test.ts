import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Catalog, decodeRecord, readSealed, sealedEnvelopeCodec, secretCodec } from '@service-foundry/core';
import { secretBox, uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  postgresServiceId,
  provisionBody,
  smallPlanId,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const instancePath = (id: string) => `/v2/service_instances/${id}`;
const provisionPath = (id: string) => `${instancePath(id)}?accepts_incomplete=true`;
const deletePath = (id: string) =>
  `${instancePath(id)}?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=${smallPlanId}`;

describe('broker: provision, last_operation, deprovision', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ routerPortRange: { min: 41000, max: 41099 } });
  });
  after(async () => {
    await h?.close();
  });

  it('provisions asynchronously: 202, records in etcd, in progress until the controller says ready', async () => {
    const id = uniqueId('inst');
    const body = provisionBody({
      context: { platform: 'cloudfoundry', instance_name: 'orders-db' },
      parameters: { replicas: 1 },
    });
    const res = await h.call('PUT', provisionPath(id), { body });
    assert.equal(res.status, 202);
    const { operation } = res.body as { operation: string };
    assert.match(operation, /^provision-[0-9a-f]{16}$/);

    const record = await h.readInstance(id);
    assert.ok(record);
    assert.equal(record.phase, 'provisioning');
    assert.equal(record.name, 'orders-db');
    assert.equal(record.serviceName, 'postgres');
    assert.equal(record.planName, 'small');
    assert.equal(record.replicas, 1);
    assert.deepEqual(record.resources, { cpuMillis: 500, memoryMb: 512, diskMb: 1024 });
    assert.deepEqual(record.operation.type, 'provision');
    assert.equal(record.operation.id, operation);
    assert.equal(record.operation.state, 'in progress');
    assert.ok(record.routerPort >= 41000 && record.routerPort <= 41099);
    const raw = (await h.client.get(h.keys.secret(id)).string()) ?? 'null';
    const stored = decodeRecord(sealedEnvelopeCodec, h.keys.secret(id), raw);
    assert.equal(stored.sealed, 'sf-aead-1', 'the secret is stored sealed, never in clear');
    assert.doesNotMatch(JSON.stringify(stored), /postgres/);
    const secret = (await readSealed(h.client, secretBox, secretCodec, h.keys.secret(id)))?.value;
    assert.ok(secret, 'the instance secret is stored');
    assert.equal(secret.adminUser, 'postgres');
    assert.match(secret.adminPassword, /^[A-Za-z0-9]{32}$/);
    assert.equal(await h.client.get(h.keys.routerPort(record.routerPort)).string(), JSON.stringify(id));

    const polled = await h.call('GET', `${instancePath(id)}/last_operation?operation=${operation}`);
    assert.equal(polled.status, 200);
    assert.equal((polled.body as { state: string }).state, 'in progress');

    const again = await h.call('PUT', provisionPath(id), { body });
    assert.equal(again.status, 202, 'a repeat while provisioning is still 202');
    assert.deepEqual(again.body, { operation });

    assert.equal((await h.call('GET', instancePath(id))).status, 404, 'not fetchable while provisioning');

    await h.markReady(id);
    const done = await h.call('GET', `${instancePath(id)}/last_operation?operation=${operation}`);
    assert.equal(done.status, 200);
    assert.deepEqual(done.body, { state: 'succeeded', description: 'instance is ready' });

    const repeat = await h.call('PUT', provisionPath(id), { body });
    assert.equal(repeat.status, 200);
    assert.deepEqual(repeat.body, {});

    const fetched = await h.call('GET', instancePath(id));
    assert.equal(fetched.status, 200);
    assert.deepEqual(fetched.body, {
      service_id: postgresServiceId,
      plan_id: smallPlanId,
      parameters: { replicas: 1 },
      maintenance_info: (await Catalog.load()).byServiceId(postgresServiceId)?.osb.plans[0]?.maintenance_info,
    });
  });

  it('uses the id as name and the plan default replicas when the platform sends neither', async () => {
    const id = uniqueId('plain');
    // Also: unknown top-level fields are ignored, and a body without Content-Type is read as JSON.
    const bare = { service_id: postgresServiceId, plan_id: smallPlanId, unknown_top_level_field: true };
    const unscoped = await h.call('PUT', provisionPath(id), { body: bare, contentType: null });
    assert.equal(unscoped.status, 400, 'a platform must say which organization and space (OSB 2.17)');
    assert.match((unscoped.body as { description: string }).description, /organization_guid and space_guid/);
    const res = await h.call('PUT', provisionPath(id), {
      body: { ...bare, organization_guid: 'org-1', space_guid: 'space-1' },
      contentType: null,
    });
    assert.equal(res.status, 202, res.text);
    const record = await h.readInstance(id);
    assert.equal(record?.name, id);
    assert.equal(record?.replicas, 1);
    assert.deepEqual(record?.parameters, {});
  });

  it('gives concurrent provisions distinct router ports, and one name to one instance only', async () => {
    const ids = Array.from({ length: 6 }, () => uniqueId('race'));
    const results = await Promise.all(ids.map((id) => h.call('PUT', provisionPath(id), { body: provisionBody() })));
    assert.deepEqual(
      results.map((r) => r.status),
      ids.map(() => 202),
    );
    const ports = await Promise.all(ids.map(async (id) => (await h.readInstance(id))?.routerPort));
    assert.equal(new Set(ports).size, ids.length, `ports ${ports.join(',')}`);

    const contenders = [uniqueId('twin'), uniqueId('twin'), uniqueId('twin')];
    const body = provisionBody({ context: { instance_name: 'shared-name' } });
    const raced = await Promise.all(contenders.map((id) => h.call('PUT', provisionPath(id), { body })));
    assert.deepEqual(raced.map((r) => r.status).sort(), [202, 409, 409], 'exactly one instance gets the name');
  });

  it('deprovisions asynchronously and answers 410 once the controller deleted the instance', async () => {
    const id = uniqueId('gone');
    const created = await h.call('PUT', provisionPath(id), { body: provisionBody() });
    assert.equal(created.status, 202);
    const provisionOperation = (created.body as { operation: string }).operation;
    await h.markReady(id);

    const res = await h.call('DELETE', deletePath(id));
    assert.equal(res.status, 202);
    const { operation } = res.body as { operation: string };
    assert.match(operation, /^deprovision-/);
    const record = await h.readInstance(id);
    assert.equal(record?.phase, 'deprovisioning');
    assert.equal(record?.operation.type, 'deprovision');
    assert.equal(record?.operation.state, 'in progress');

    const again = await h.call('DELETE', deletePath(id));
    assert.equal(again.status, 202);
    assert.deepEqual(again.body, { operation }, 'a repeat returns the same operation');

    const polled = await h.call('GET', `${instancePath(id)}/last_operation?operation=${operation}`);
    assert.equal((polled.body as { state: string }).state, 'in progress');
    const repeatPut = await h.call('PUT', provisionPath(id), { body: provisionBody() });
    assert.equal(repeatPut.status, 422);
    assertOsbError(repeatPut.body, 'ConcurrencyError');

    await h.deleteLikeController(id);
    const gone = await h.call('GET', `${instancePath(id)}/last_operation?operation=${operation}`);
    assert.equal(gone.status, 410);
    assert.deepEqual(gone.body, {});
    assert.equal((await h.call('GET', `${instancePath(id)}/last_operation`)).status, 410);
    const provisionPoll = await h.call('GET', `${instancePath(id)}/last_operation?operation=${provisionOperation}`);
    assert.equal(provisionPoll.status, 410, 'a deleted instance is gone, whichever operation is polled');
    const never = await h.call('GET', `${instancePath(uniqueId('never'))}/last_operation`);
    assert.equal(never.status, 404, 'an instance that never existed is not found (OSB 2.17)');
    assertOsbError(never.body, 'NotFound');

    const deleted = await h.call('DELETE', deletePath(id));
    assert.equal(deleted.status, 410);
    assert.deepEqual(deleted.body, {});
  });

  it('deprovisions an instance that is still provisioning', async () => {
    const id = uniqueId('early');
    assert.equal((await h.call('PUT', provisionPath(id), { body: provisionBody() })).status, 202);
    const res = await h.call('DELETE', deletePath(id), { contentType: 'application/json', rawBody: '' });
    assert.equal(res.status, 202, res.text);
    assert.equal((await h.readInstance(id))?.phase, 'deprovisioning');
  });
});
