import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCatalogDir } from '@service-foundry/core';
import { suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, provisionBody } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';

interface CreateSchema {
  anyOf?: unknown;
  properties: { durability: { enum: string[] } };
}

interface Entry {
  osb: {
    id: string;
    plans: Array<{ id: string; name: string; schemas: { service_instance: { create: { parameters: CreateSchema } } } }>;
  };
}

/**
 * The real catalog with the schema rules that guard durability taken out, so the broker's
 * own check is what answers: Postgres ha-small without its anyOf, Redis standby-small
 * (volume copies, no streaming standby) allowing `received`.
 */
async function catalogWithoutSchemaGuards(dir: string): Promise<{ redisId: string; standbyPlanId: string }> {
  const read = async (service: string) =>
    JSON.parse(await readFile(join(defaultCatalogDir(), service, 'service.json'), 'utf8')) as Entry;
  const postgres = await read('postgres');
  const ha = postgres.osb.plans.find((p) => p.name === 'ha-small');
  delete ha?.schemas.service_instance.create.parameters.anyOf;
  const redis = await read('redis');
  const standby = redis.osb.plans.find((p) => p.name === 'standby-small');
  assert.ok(ha && standby);
  standby.schemas.service_instance.create.parameters.properties.durability.enum = ['async', 'received'];
  for (const [name, entry] of [
    ['postgres', postgres],
    ['redis', redis],
  ] as const) {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(join(dir, name, 'service.json'), JSON.stringify(entry));
  }
  return { redisId: redis.osb.id, standbyPlanId: standby.id };
}

describe('broker: durability that waits for a standby needs one, on provision and on update', () => {
  let h: Harness;
  const catalogDir = suiteTempDir('sf-broker-durability');
  let redis: { redisId: string; standbyPlanId: string };
  const single = uniqueId('single');
  const patch = `/v2/service_instances/${single}?accepts_incomplete=true`;

  before(async () => {
    redis = await catalogWithoutSchemaGuards(catalogDir.path);
    h = await startHarness({ catalogDir: catalogDir.path });
    const body = provisionBody({ plan_id: haSmallPlanId, parameters: { replicas: 1, durability: 'async' } });
    assert.equal((await h.call('PUT', patch, { body })).status, 202);
    await h.markReady(single);
  });
  after(async () => {
    await h?.close();
  });

  it('refuses remote-fsync or received with one replica at provision (400, nothing stored)', async () => {
    const before = await h.dump();
    for (const durability of ['remote-fsync', 'received']) {
      const res = await h.provision(uniqueId('p'), { plan_id: haSmallPlanId, parameters: { replicas: 1, durability } });
      assert.equal(res.status, 400, res.text);
      assertOsbError(res.body, 'BadRequest');
      assert.match(
        (res.body as { description: string }).description,
        new RegExp(`durability ${durability} waits for a standby and an instance of 1 replica has none`),
      );
    }
    // The plan's default (remote-fsync) counts too: one replica without a durability is refused.
    const byDefault = await h.provision(uniqueId('d'), { plan_id: haSmallPlanId, parameters: { replicas: 1 } });
    assert.equal(byDefault.status, 400);
    assert.equal(await h.dump(), before);
  });

  it('refuses received on a plan whose standbys are volume copies', async () => {
    const res = await h.provision(uniqueId('r'), {
      service_id: redis.redisId,
      plan_id: redis.standbyPlanId,
      parameters: { durability: 'received' },
    });
    assert.equal(res.status, 400, res.text);
    assert.match((res.body as { description: string }).description, /streaming standby and this plan has none/);
  });

  it("refuses an update to remote-fsync or received, checked against the instance's replica count", async () => {
    const before = await h.dump();
    for (const durability of ['remote-fsync', 'received']) {
      const res = await h.call('PATCH', patch, {
        body: { service_id: postgresServiceId, parameters: { durability } },
      });
      assert.equal(res.status, 400, res.text);
      assert.match((res.body as { description: string }).description, /1 replica has none; use async/);
    }
    assert.equal(await h.dump(), before);
    const localIo = await h.call('PATCH', patch, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(localIo.status, 202, 'other live changes still work');
    assert.deepEqual((await h.readInstance(single))?.io, { durability: 'async', localIo: 'batched' });
  });

  it('allows remote-fsync with two replicas, at provision and by update', async () => {
    const id = uniqueId('pair');
    const path = `/v2/service_instances/${id}?accepts_incomplete=true`;
    const body = provisionBody({ plan_id: haSmallPlanId, parameters: { replicas: 2, durability: 'async' } });
    assert.equal((await h.call('PUT', path, { body })).status, 202);
    await h.markReady(id);
    const res = await h.call('PATCH', path, {
      body: { service_id: postgresServiceId, parameters: { durability: 'remote-fsync' } },
    });
    assert.equal(res.status, 202, res.text);
    assert.equal((await h.readInstance(id))?.io?.durability, 'remote-fsync');
  });
});
