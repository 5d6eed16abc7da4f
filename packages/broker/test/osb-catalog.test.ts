import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Catalog, CatalogError, defaultCatalogDir } from '@service-foundry/core';
import { secretsKeyFile, startTestEtcd, suiteTempDir } from '@service-foundry/test-support';
import { brokerLogins } from '@service-foundry/test-support/broker-calls';
import { startBroker } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

type Json = Record<string, unknown>;

const semver =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Every `$ref` anywhere in a JSON value. */
function refs(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key === '$ref' ? [String(inner)] : refs(inner as Record<string, unknown>),
  );
}

/** OSB v2.17 "Catalog Management": what the catalog must say, as each platform version sees it. */
describe('OSB: catalog', () => {
  let h: Harness;
  let catalog: { services: Json[] };
  before(async () => {
    h = await startHarness();
    const res = await h.call('GET', '/v2/catalog');
    assert.equal(res.status, 200);
    catalog = res.body as { services: Json[] };
  });
  after(async () => {
    await h?.close();
  });

  it('gives every offering and plan a non-empty, unique id, name and description (MUST)', () => {
    const ids = new Set<string>();
    const names = new Set<string>();
    assert.ok(catalog.services.length > 0);
    for (const service of catalog.services) {
      for (const field of ['id', 'name', 'description'] as const) {
        assert.equal(typeof service[field], 'string');
        assert.ok((service[field] as string).length > 0, `service ${field}`);
      }
      assert.ok(!ids.has(service.id as string), 'service ids are unique');
      assert.ok(!names.has(service.name as string), 'service names are unique');
      ids.add(service.id as string);
      names.add(service.name as string);
      assert.match(service.name as string, /^[A-Za-z0-9.-]+$/, 'CLI-friendly (RECOMMENDED)');
      assert.ok((service.description as string).length <= 255, 'strings within 255 characters (RECOMMENDED)');
      assert.equal(typeof service.bindable, 'boolean');
      const plans = service.plans as Json[];
      assert.ok(plans.length > 0, 'at least one plan (MUST)');
      const planNames = new Set<string>();
      for (const plan of plans) {
        for (const field of ['id', 'name', 'description'] as const) {
          assert.ok(typeof plan[field] === 'string' && (plan[field] as string).length > 0, `plan ${field}`);
        }
        assert.ok(!ids.has(plan.id as string), 'plan ids are globally unique');
        ids.add(plan.id as string);
        assert.ok(!planNames.has(plan.name as string), 'plan names are unique within the offering');
        planNames.add(plan.name as string);
        assert.match(plan.name as string, /^[A-Za-z0-9.-]+$/);
        assert.ok((plan.description as string).length <= 255);
      }
    }
  });

  it('keeps ids across queries (MUST NOT change)', async () => {
    const again = await h.call('GET', '/v2/catalog');
    assert.deepEqual(again.body, catalog);
  });

  it('declares what the broker does: bindable, instances and bindings retrievable, plan changes (not to or from a volume-shipping plan), binding rotation, no context updates', () => {
    for (const service of catalog.services) {
      assert.equal(service.bindable, true);
      assert.equal(service.instances_retrievable, true, 'GET of an instance is built');
      assert.equal(service.bindings_retrievable, true, 'GET of a binding is built');
      assert.equal(service.plan_updateable, true, 'plans of one service can be changed (plan-change.ts)');
      for (const plan of service.plans as Json[]) {
        const shipping = (plan.name as string).startsWith('standby-');
        assert.equal(plan.plan_updateable, shipping ? false : undefined, `${service.name}/${plan.name}`);
      }
      assert.equal(service.allow_context_updates, false, 'a context-only PATCH changes nothing');
      for (const plan of service.plans as Json[]) {
        assert.equal(plan.binding_rotatable, true, 'a binding can be rotated (binding-rotation.ts)');
        assert.notEqual(plan.bindable, false);
      }
    }
  });

  it('gives every plan maintenance_info with a semantic version whose major is the image revision', async () => {
    const entries = (await Catalog.load()).entries;
    for (const service of catalog.services) {
      const entry = entries.find((e) => e.osb.id === service.id);
      assert.ok(entry);
      const revision = /-r(\d+)$/.exec(entry.runtime.image)?.[1];
      for (const plan of service.plans as Json[]) {
        const info = plan.maintenance_info as { version: string; description?: string };
        assert.ok(info, `${service.name}/${plan.name} has maintenance_info`);
        assert.match(info.version, semver, 'semantic version 2.0 (MUST)');
        assert.equal(info.version.split('.')[0], revision, `${entry.runtime.image}: a rebuilt image is a new version`);
        assert.ok(info.description && info.description.length > 0, 'describes the maintenance (SHOULD)');
      }
    }
  });

  it('declares every parameter schema with $schema, no external reference, under 64 kB (MUST)', () => {
    for (const service of catalog.services) {
      for (const plan of service.plans as Json[]) {
        const schemas = plan.schemas as Json;
        const found = [
          (schemas.service_instance as Json)?.create,
          (schemas.service_instance as Json)?.update,
          (schemas.service_binding as Json)?.create,
        ].filter((s): s is Json => s !== undefined);
        assert.ok(found.length > 0);
        for (const schema of found.map((s) => s.parameters as Json)) {
          assert.equal(schema.$schema, 'http://json-schema.org/draft-04/schema#');
          assert.deepEqual(refs(schema), []);
          assert.ok(Buffer.byteLength(JSON.stringify(schema)) < 64 * 1024);
        }
      }
    }
  });

  it('sends each platform only the fields of its OSB version', async () => {
    const fields = async (apiVersion: string) => {
      const res = await h.call('GET', '/v2/catalog', { apiVersion });
      assert.equal(res.status, 200);
      const service = (res.body as { services: Json[] }).services[0] as Json;
      const plan = (service.plans as Json[])[0] as Json;
      return { service: Object.keys(service), plan: Object.keys(plan) };
    };
    const v11 = await fields('2.11');
    assert.ok(!v11.plan.includes('schemas') && !v11.service.includes('instances_retrievable'));
    assert.ok(v11.plan.includes('free') && v11.service.includes('plan_updateable'), 'fields every version has');
    const v13 = await fields('2.13');
    assert.ok(v13.plan.includes('schemas') && !v13.service.includes('bindings_retrievable'));
    const v14 = await fields('2.14');
    assert.ok(v14.service.includes('instances_retrievable') && v14.service.includes('bindings_retrievable'));
    assert.ok(!v14.plan.includes('maintenance_info') && !v14.service.includes('allow_context_updates'));
    const v15 = await fields('2.15');
    assert.ok(v15.plan.includes('maintenance_info') && v15.service.includes('allow_context_updates'));
    assert.ok(!v15.plan.includes('binding_rotatable'));
    const v16 = await fields('2.16');
    assert.ok(!v16.plan.includes('binding_rotatable'));
    const v17 = await fields('2.17');
    assert.ok(v17.plan.includes('binding_rotatable'));
  });
});

describe('OSB: a catalog whose maintenance_info is not a semantic version is refused at startup', () => {
  const dir = suiteTempDir('sf-osb-catalog');

  it('does not start, naming the plan', async () => {
    const entry = JSON.parse(await readFile(join(defaultCatalogDir(), 'postgres', 'service.json'), 'utf8'));
    entry.osb.plans[0].maintenance_info = { version: 'r4' };
    await mkdir(join(dir.path, 'postgres'), { recursive: true });
    await writeFile(join(dir.path, 'postgres', 'service.json'), JSON.stringify(entry));
    const etcd = await startTestEtcd();
    try {
      await assert.rejects(
        startBroker({
          etcdEndpoints: [etcd.endpoint],
          keyspaceRoot: etcd.keys.root,
          secretsKeyFile,
          port: 0,
          catalogDir: dir.path,
          ...brokerLogins,
        }),
        (error: unknown) =>
          error instanceof CatalogError &&
          /plan small: maintenance_info.version must be a semantic/.test(error.message),
      );
    } finally {
      await etcd.stop();
    }
  });
});
