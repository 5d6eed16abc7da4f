import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import pg from 'pg';
import type { Harness } from './helpers.js';
import type { LocalPostgres } from './local-postgres.js';
import {
  bindBody,
  bindingPath,
  type PostgresInstance,
  startPostgresInstance,
  unbindPath,
} from './postgres-instance.js';

interface Credentials {
  username: string;
  password: string;
  uri: string;
}

/** A session of a binding user, as an app (or an attacker holding its key) opens it. */
async function session(uri: string, database?: string): Promise<pg.Client> {
  const url = new URL(uri);
  if (database) url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function asUser(uri: string, ...statements: string[]): Promise<pg.QueryResult[]> {
  const client = await session(uri);
  try {
    const results: pg.QueryResult[] = [];
    for (const sql of statements) results.push(await client.query(sql));
    return results;
  } finally {
    await client.end();
  }
}

/**
 * What a binding user must not be able to do, tried as one with a real client against the
 * catalog's image, with the broker's real driver making and removing keys through the
 * router port: become superuser by planting code the admin session runs, drop or rename
 * the database, reach other databases, keep a session after its key is deleted.
 */
describe('broker: a binding user attacking its Postgres instance', () => {
  let instance: PostgresInstance;
  let h: Harness;
  let postgres: LocalPostgres;
  const instanceId = uniqueId('atk');
  const bind = async (id: string): Promise<Credentials> => {
    const res = await h.call('PUT', bindingPath(instanceId, id), { body: bindBody() });
    assert.equal(res.status, 201, res.text);
    return (res.body as { credentials: Credentials }).credentials;
  };
  const unbind = async (id: string) => {
    const res = await h.call('DELETE', unbindPath(instanceId, id));
    assert.equal(res.status, 200, res.text);
  };
  /** Every database-level and role-level setting, and every superuser: what an attack would change. */
  const privilegedState = async () => {
    const settings = await postgres.admin(
      `SELECT coalesce(d.datname, '*') AS db, coalesce(r.rolname, '*') AS role, s.setconfig::text AS config
         FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
         LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2`,
    );
    const superusers = await postgres.admin('SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY 1');
    const database = await postgres.admin(
      "SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'sf'",
    );
    return { settings: settings.rows, superusers: superusers.rows, database: database.rows };
  };

  let attacker: Credentials;

  before(async () => {
    instance = await startPostgresInstance(instanceId, { bindTimeoutMs: 10_000 });
    ({ h, postgres } = instance);
    attacker = await bind('attacker');
  });
  after(async () => {
    await instance?.close();
  });

  it('cannot make the admin session run its functions, nor change settings that reach it', async () => {
    const before = await privilegedState();
    // Functions shadowing every one the broker's admin session calls (resolution ignores the
    // return type); each would record who ran it and make the attacker a superuser.
    const payload = `BEGIN INSERT INTO public.ran_as VALUES (current_user);
      EXECUTE 'ALTER ROLE ${attacker.username} SUPERUSER'; RETURN NULL; END`;
    await asUser(
      attacker.uri,
      'CREATE TABLE public.ran_as (who text)',
      'GRANT INSERT ON public.ran_as TO PUBLIC',
      `CREATE FUNCTION public.hashtext(text) RETURNS int LANGUAGE plpgsql AS $$${payload}$$`,
      `CREATE FUNCTION public.pg_advisory_xact_lock(int) RETURNS int LANGUAGE plpgsql AS $$${payload}$$`,
      `CREATE FUNCTION public.pg_terminate_backend(int, bigint) RETURNS int LANGUAGE plpgsql AS $$${payload}$$`,
    );
    // Settings that would put public first for the admin: refused, as the app role and as itself.
    for (const prefix of [[], ['RESET ROLE']]) {
      for (const [sql, refusal] of [
        ['ALTER DATABASE sf SET search_path = public, pg_catalog', /must be owner of database sf/],
        ['ALTER ROLE postgres SET search_path = public, pg_catalog', /must be superuser/],
        ['ALTER ROLE ALL SET search_path = public, pg_catalog', /must be superuser/],
        ['ALTER ROLE ALL IN DATABASE sf SET search_path = public', /must be superuser|must be owner of database sf/],
        [`ALTER ROLE ${attacker.username} SUPERUSER`, /must be superuser/],
        ["COPY (SELECT 1) TO PROGRAM 'id'", /permission denied|must be superuser/],
      ] as const) {
        await assert.rejects(asUser(attacker.uri, ...prefix, sql), refusal, sql);
      }
    }

    // The next create-service-key and delete-service-key run the admin's statements.
    const victim = await bind('victim');
    await asUser(victim.uri, 'SELECT 1');
    await unbind('victim');

    assert.deepEqual(await postgres.admin('SELECT who FROM public.ran_as').then((r) => r.rows), []);
    assert.deepEqual(await privilegedState(), before, 'no setting, superuser or owner changed');

    // Postgres lets the app role set its own defaults (a role may, under SET ROLE); they
    // apply to sessions that log in as sf_app, and none can (NOLOGIN): a key's session and
    // the admin's keep theirs.
    await asUser(attacker.uri, 'ALTER ROLE sf_app SET search_path = public, pg_catalog');
    const fresh = await bind('fresh');
    const [path] = await asUser(fresh.uri, 'SHOW search_path');
    assert.equal(path?.rows[0]?.search_path, '"$user", public');
    await unbind('fresh');
    assert.deepEqual(await postgres.admin('SELECT who FROM public.ran_as').then((r) => r.rows), []);
    assert.equal(
      (await postgres.admin('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [attacker.username])).rows[0]?.rolsuper,
      false,
    );
  });

  it('cannot drop or rename the database, reach other databases, or create event triggers', async () => {
    const before = await privilegedState();
    for (const prefix of [[], ['RESET ROLE']]) {
      for (const [sql, refusal] of [
        ['DROP DATABASE sf', /must be owner of database sf/],
        ['ALTER DATABASE sf RENAME TO gone', /must be owner of database sf/],
        ['ALTER DATABASE sf OWNER TO sf_app', /must be owner of database sf/],
        ['DROP SCHEMA public CASCADE', /must be owner of schema public/],
        ['CREATE SCHEMA elsewhere', /permission denied for database sf/],
        ['CREATE EXTENSION pgcrypto', /permission denied to create extension/],
        [
          'CREATE EVENT TRIGGER watch ON ddl_command_start EXECUTE FUNCTION pg_catalog.pg_event_trigger_ddl_commands()',
          /permission denied to create event trigger|must be superuser/,
        ],
        ['CREATE ROLE accomplice LOGIN', /permission denied to create role/],
        [`GRANT sf_app TO ${attacker.username}`, /must have admin option on role "sf_app"/],
      ] as const) {
        await assert.rejects(asUser(attacker.uri, ...prefix, sql), refusal, sql);
      }
    }
    for (const database of ['postgres', 'template1', 'template0']) {
      await assert.rejects(session(attacker.uri, database), /no pg_hba\.conf entry|not currently accepting/, database);
    }
    assert.deepEqual(await privilegedState(), before);
    assert.deepEqual(before.database, [{ datname: 'sf', owner: 'postgres' }]);
  });

  it("ends the key's open sessions when the key is deleted", async () => {
    const doomed = await bind('doomed');
    const busy = await session(doomed.uri);
    const idle = await session(doomed.uri);
    const sleeping = busy.query('SELECT pg_sleep(60)');
    const ended = assert.rejects(sleeping, /terminating connection due to administrator command|Connection terminated/);
    const started = Date.now();
    await unbind('doomed');
    await ended;
    assert.ok(Date.now() - started < 30_000, 'the running query ended with the unbind, not on its own');
    // The idle session was ended too: its socket is closed.
    await assert.rejects(idle.query('SELECT 1'), /terminat|connection error|Connection terminated/);
    await Promise.all([busy.end().catch(() => undefined), idle.end().catch(() => undefined)]);
    const role = await postgres.admin('SELECT oid FROM pg_roles WHERE rolname = $1', [doomed.username]);
    assert.equal(role.rowCount, 0, 'the role is gone');
    await waitFor(
      async () =>
        (
          await postgres.admin(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND (usename = $1 OR usename IS NULL)",
            [doomed.username],
          )
        ).rows[0]?.n === 0,
      { description: 'no session of the deleted key left', timeoutMs: 10_000, intervalMs: 100 },
    );
    await assert.rejects(session(doomed.uri), /password authentication failed|does not exist|no pg_hba\.conf entry/);
  });
});
