import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDirFor, uniqueId } from '@service-foundry/test-support';
import { call } from '@service-foundry/test-support/broker-calls';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import pg from 'pg';
import { bindBody, bindingPath, type PostgresInstance, startPostgresInstance } from './postgres-instance.js';

interface TlsCredentials {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  uri: string;
  jdbcUrl: string;
  tls: boolean;
  ca_certificate: string;
}

/** The host's psql on a connection URI; its exit code and output. */
function psql(uri: string, sql: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      [uri, '-X', '-A', '-t', '-q', '-c', sql],
      { env: { ...process.env, PGCONNECT_TIMEOUT: '10' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
          out: `${stdout}${stderr}`.trim(),
        });
      },
    );
  });
}

/**
 * Bindings of a TLS Postgres (the catalog image with a service certificate of a test CA,
 * as the agent runs it; clients must use TLS): the broker, given the CA (`serviceCaFile`),
 * runs its own statements over TLS verifying the server, and hands the app what it needs
 * to do the same: `sslmode=verify-full` in the URIs and the CA certificate.
 */
describe('broker: TLS bindings (verify-full, the CA in the credentials)', () => {
  let pki: TestPki;
  let otherCa: TestPki;
  let instance: PostgresInstance;
  const instanceId = uniqueId('tlsdb');

  before(async () => {
    pki = await makeTestPki([{ name: 'pg', address: '127.0.0.1' }], { routerHosts: ['127.0.0.1'] });
    otherCa = await makeTestPki([{ name: 'pg', address: '127.0.0.1' }], { routerHosts: ['127.0.0.1'] });
    instance = await startPostgresInstance(
      instanceId,
      { bindTimeoutMs: 10_000, serviceCaFile: pki.caFile },
      { tls: pki.serviceTls('pg') },
    );
  });
  after(async () => {
    await instance?.close();
    await pki?.remove();
    await otherCa?.remove();
  });

  let credentials: TlsCredentials;

  it('binds over TLS and returns verify-full URIs and the CA', async () => {
    const res = await instance.h.call('PUT', bindingPath(instanceId, 'app'), { body: bindBody() });
    // The server accepts no plaintext session (hostssl): the user exists, so the broker's session was TLS.
    assert.equal(res.status, 201, res.text);
    credentials = (res.body as { credentials: TlsCredentials }).credentials;
    const { username, password, port } = credentials;
    assert.equal(credentials.uri, `postgres://${username}:${password}@127.0.0.1:${port}/sf?sslmode=verify-full`);
    assert.equal(
      credentials.jdbcUrl,
      `jdbc:postgresql://127.0.0.1:${port}/sf?user=${username}&password=${password}&ssl=true&sslmode=verify-full`,
    );
    assert.equal(credentials.tls, true);
    assert.equal(credentials.ca_certificate, await readFile(pki.caFile, 'utf8'));
  });

  it('an app verifies the server end to end with the CA it was given; another CA or plaintext fails', async (t) => {
    // node-postgres, given the CA: TLS, checked, as the session shows.
    const client = new pg.Client({
      host: credentials.host,
      port: credentials.port,
      user: credentials.username,
      password: credentials.password,
      database: credentials.database,
      ssl: { ca: credentials.ca_certificate, rejectUnauthorized: true },
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      // As the key's own login (a session working as sf_app sees no other role's row).
      await client.query('SET ROLE NONE');
      const seen = await client.query('SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()');
      assert.deepEqual(seen.rows, [{ ssl: true }]);
    } finally {
      await client.end();
    }
    // libpq (psql) with the URI as given, the CA written to a file as an app would.
    const dir = await tempDirFor(t, 'sf-broker-tls');
    const caFile = join(dir, 'ca.crt');
    await writeFile(caFile, credentials.ca_certificate);
    const ok = await psql(`${credentials.uri}&sslrootcert=${caFile}`, 'SELECT 1');
    assert.deepEqual(ok, { code: 0, out: '1' });
    const wrongCa = await psql(`${credentials.uri}&sslrootcert=${otherCa.caFile}`, 'SELECT 1');
    assert.notEqual(wrongCa.code, 0);
    assert.match(wrongCa.out, /certificate verify failed/);
    const plain = await psql(credentials.uri.replace('sslmode=verify-full', 'sslmode=disable'), 'SELECT 1');
    assert.notEqual(plain.code, 0);
    assert.match(plain.out, /no pg_hba\.conf entry .* no encryption/);
  });

  it('a broker trusting another CA refuses to run its statements on the server', async () => {
    const wary = await instance.h.extraBroker({ bindTimeoutMs: 10_000, serviceCaFile: otherCa.caFile });
    try {
      const res = await call(wary.url, 'PUT', bindingPath(instanceId, 'app-2'), { body: bindBody() });
      assert.equal(res.status, 500, res.text);
      assert.match(res.text, /BindingFailed/);
      assert.match(res.text, /self[- ]signed certificate|unable to verify/);
    } finally {
      await wary.stop();
    }
  });
});
