import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Catalog } from '@service-foundry/core';
import ajvDraft04 from 'ajv-draft-04';
import { fillCommand } from './postgres-nodes.js';

/**
 * The Postgres catalog entry as the broker and the agent read it: the replication recipe's
 * commands, and plan schemas (draft-04, checked the way the broker does: no coercion, no
 * defaults filled in) that accept each plan's own defaults.
 */

test('postgres catalog entry: replication recipe, ha-small plan and its defaults', async () => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry, 'services-catalog/postgres is in the catalog');
  const recipe = entry.replication;
  assert.ok(recipe);
  assert.equal(recipe.port, entry.runtime.port);
  assert.deepEqual(fillCommand(recipe.follow, { host: '10.0.0.7', port: '5432' }), [
    'sf-pg',
    'follow',
    '10.0.0.7',
    '5432',
  ]);
  assert.deepEqual(fillCommand(recipe.configure, { durability: 'remote-fsync', localIo: 'fsync' }), [
    'sf-pg',
    'configure',
    'remote-fsync',
    'fsync',
  ]);

  // Passwords reach the container as files the environment names, never as values.
  assert.equal(entry.runtime.adminPasswordFileEnv, 'POSTGRES_PASSWORD_FILE');
  assert.equal(recipe.env.replicationPasswordFile, 'SF_REPLICATION_PASSWORD_FILE');
  assert.deepEqual(entry.runtime.secretFiles, { dir: '/run/sf-secrets', uid: 999, gid: 999 });
  // The platform's CHECKPOINT before a volume copy goes through sf-pg (pinned search_path).
  assert.deepEqual(entry.flush, ['sf-pg', 'checkpoint']);
  // A key is locked out, then its sessions ended, before its role is dropped.
  assert.ok(entry.binding.disable?.some((sql) => /NOLOGIN/.test(sql)));
  assert.ok(entry.binding.drop.some((sql) => /pg_catalog\.pg_terminate_backend/.test(sql)));

  const ajv = new ajvDraft04.default({ strict: false, allErrors: true, coerceTypes: false, useDefaults: false });
  const plan = (name: string) => {
    const osb = entry.osb.plans.find((p) => p.name === name);
    const sizing = entry.plans[name];
    assert.ok(osb && sizing, `plan ${name}`);
    const create = osb.schemas?.service_instance?.create?.parameters;
    const update = osb.schemas?.service_instance?.update?.parameters;
    assert.ok(create && update, `plan ${name} has create and update schemas`);
    return { osb, sizing, create: ajv.compile(create), update: ajv.compile(update) };
  };

  const ha = plan('ha-small');
  assert.equal(ha.sizing.replicas, 3);
  assert.deepEqual(ha.sizing.defaults, {
    durability: 'remote-fsync',
    local_io: 'fsync',
    fencing: 'required',
    fencing_timeout_s: 60,
    max_lag_bytes: 16777216,
  });
  // The plan's own defaults are valid parameters of it.
  assert.ok(ha.create({ replicas: ha.sizing.replicas, ...ha.sizing.defaults }), JSON.stringify(ha.create.errors));
  assert.ok(ha.create({}));
  assert.ok(ha.create({ replicas: 5, durability: 'received', local_io: 'batched', fencing: 'best-effort' }));
  assert.ok(!ha.create({ replicas: 6 }));
  assert.ok(!ha.create({ durability: 'sync' }));
  assert.ok(!ha.create({ fencing_timeout_s: 4 }));
  assert.ok(!ha.create({ max_lag_bytes: -1 }));
  assert.ok(!ha.create({ replica: 3 }), 'unknown parameters are refused');
  // One server has no standby to acknowledge: synchronous durability would block every write.
  assert.ok(!ha.create({ replicas: 1 }));
  assert.ok(!ha.create({ replicas: 1, durability: 'remote-fsync' }));
  assert.ok(ha.create({ replicas: 1, durability: 'async' }));
  assert.ok(ha.update({ durability: 'async', local_io: 'unsafe' }));
  assert.ok(!ha.update({ replicas: 2 }), 'replicas are not an update parameter');
  assert.equal(entry.osb.plan_updateable, true, 'small ↔ ha-small is a plan change');

  const small = plan('small');
  assert.equal(small.sizing.replicas, 1);
  assert.equal(small.sizing.defaults?.durability, 'async');
  assert.equal(small.sizing.defaults?.fencing, 'off');
  const { durability, local_io } = small.sizing.defaults ?? {};
  assert.ok(small.create({ replicas: 1, durability, local_io }), JSON.stringify(small.create.errors));
  assert.ok(small.create({ replicas: 1, durability: 'async', local_io: 'batched' }));
  assert.ok(!small.create({ replicas: 2 }));
  assert.ok(!small.create({ durability: 'remote-fsync' }));
  assert.ok(small.update({ local_io: 'unsafe' }));
});
