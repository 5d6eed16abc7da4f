import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Catalog, CatalogError, defaultCatalogDir, planClientTls } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';

/**
 * Which plans may let clients in without TLS (docs/security.md "Plans decide plaintext"):
 * every catalog plan says `required`; Postgres could honour `optional`, Redis cannot (one
 * port for clients and replicas), and the catalog refuses a mode the image cannot honour.
 */
test('catalog TLS: every plan requires it; a mode the image cannot honour is refused at load', async (t) => {
  const catalog = await Catalog.load();
  const postgres = catalog.byServiceName('postgres');
  const redis = catalog.byServiceName('redis');
  assert.ok(postgres && redis);
  assert.deepEqual(postgres.runtime.tls?.clients, ['required', 'optional']);
  assert.deepEqual(redis.runtime.tls?.clients, ['required']);
  for (const entry of [postgres, redis]) {
    for (const plan of entry.osb.plans) assert.equal(planClientTls(entry, plan.name), 'required', plan.name);
  }

  // A copy of the catalog with one change to redis/service.json, loaded as sf would.
  type EntryJson = { runtime: { tls?: unknown }; plans: Record<string, { tls?: unknown }> };
  const variant = async (change: (entry: EntryJson) => void): Promise<unknown> => {
    const dir = await tempDirFor(t, 'sf-catalog-tls');
    await cp(defaultCatalogDir(), dir, { recursive: true });
    const file = join(dir, 'redis', 'service.json');
    const entry = JSON.parse(await readFile(file, 'utf8')) as EntryJson;
    change(entry);
    await writeFile(file, JSON.stringify(entry));
    return Catalog.load(dir);
  };
  await assert.rejects(
    variant((entry) => {
      (entry.plans.small ?? assert.fail()).tls = 'optional';
    }),
    (error: unknown) =>
      error instanceof CatalogError &&
      /plan small: tls optional is not one of the image's client TLS modes/.test(error.message),
  );
  await assert.rejects(
    variant((entry) => {
      delete entry.runtime.tls;
    }),
    (error: unknown) => error instanceof CatalogError && /tls required is not one of/.test(error.message),
  );
  await assert.rejects(
    variant((entry) => {
      (entry.plans.small ?? assert.fail()).tls = 'sometimes';
    }),
    CatalogError,
  );
  // Without runtime.tls and without plan modes: a service without TLS, plaintext (test catalogs).
  const plain = (await variant((entry) => {
    delete entry.runtime.tls;
    for (const plan of Object.values(entry.plans)) delete plan.tls;
  })) as Catalog;
  const entry = plain.byServiceName('redis');
  assert.ok(entry);
  assert.equal(planClientTls(entry, 'small'), 'none');
});
