import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type AssignmentRecord, Catalog, type InstanceSecret, InvalidConfigError } from '@service-foundry/core';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { extract } from 'tar-stream';
import { containerCreateOptions, type NodeIdentity, pidsLimit } from '../src/container-spec.js';
import { replicationEnv } from '../src/replication-spec.js';
import { type ContainerTls, loadContainerTls, secretFilesArchive } from '../src/secret-files.js';

/**
 * What the agent asks Docker for, from the real catalog: passwords only as files (the tar
 * it puts into the container), the plan's connection and process limits, and refusals of
 * what it cannot create safely.
 */

const secret: InstanceSecret = {
  adminUser: 'postgres',
  adminPassword: 'Adm1nPassw0rdAdm1nPassw0rd',
  replicationUser: 'sf_replicator',
  replicationPassword: 'Repl1cati0nPassw0rdRepl',
};
const bare = { clusterId: 'c1', node: 'n1', address: '127.0.1.1' };
/** The node as `sf up` configures it: with its service certificate (a real one, from a test CA). */
let identity: NodeIdentity;
let tls: ContainerTls;
let pki: TestPki;
before(async () => {
  pki = await makeTestPki([{ name: 'n1', address: '127.0.1.1' }]);
  tls = await loadContainerTls(pki.serviceTls('n1'), 'node');
  identity = { ...bare, serviceTls: tls };
});
after(async () => {
  await pki?.remove();
});

function assignment(planName: string): AssignmentRecord {
  return {
    instanceId: 'i1',
    ordinal: 0,
    serviceName: 'postgres',
    planName,
    resources: { cpuMillis: 500, memoryMb: 512, diskMb: 1024 },
    desired: 'running',
    role: 'primary',
    epoch: 0,
  };
}

interface TarEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  body: string;
}

async function entriesOf(archive: Buffer): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      const { name, type, mode, uid, gid } = header;
      entries.push({
        name,
        type: type ?? 'file',
        mode: mode ?? 0,
        uid: uid ?? -1,
        gid: gid ?? -1,
        body: `${Buffer.concat(chunks)}`,
      });
      next();
    });
  });
  const done = new Promise((resolve, reject) => {
    reader.on('finish', () => resolve(undefined));
    reader.on('error', reject);
  });
  reader.end(archive);
  await done;
  return entries;
}

test('a replicated Postgres container: passwords as files only, the plan limits in its config', async () => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry?.replication);
  const record = assignment('small');
  const spec = containerCreateOptions(identity, record, entry, secret, {
    role: 'primary',
    generation: 0,
    volume: 'v',
    env: replicationEnv(entry.replication, record, 'primary', secret),
  });

  const shown = JSON.stringify(spec.options);
  assert.ok(!shown.includes(secret.adminPassword) && !shown.includes(secret.replicationPassword ?? '-'));
  for (const expected of [
    'POSTGRES_PASSWORD_FILE=/run/sf-secrets/admin-password',
    'SF_REPLICATION_PASSWORD_FILE=/run/sf-secrets/replication-password',
    'SF_REPLICATION_USER=sf_replicator',
    'SF_MAX_CONNECTIONS=64',
  ]) {
    assert.ok(spec.options.Env?.includes(expected), expected);
  }
  assert.equal(spec.options.HostConfig?.PidsLimit, 64 * 2 + 64);
  assert.equal(spec.options.HostConfig?.Sysctls?.['net.ipv4.tcp_keepalive_time'], '10');
  assert.equal(pidsLimit({ service: 512, router: 400 }), 1088);

  const entries = await entriesOf(await secretFilesArchive(spec.secretFiles));
  assert.deepEqual(
    entries.map((e) => [e.name, e.type, e.mode.toString(8), e.uid, e.gid, e.body]),
    [
      ['run/sf-secrets/', 'directory', '500', 999, 999, ''],
      ['run/sf-secrets/admin-password', 'file', '400', 999, 999, secret.adminPassword],
      // No rotation under way: the previous-password files are empty.
      ['run/sf-secrets/admin-password.previous', 'file', '400', 999, 999, ''],
      ['run/sf-secrets/replication-password', 'file', '400', 999, 999, secret.replicationPassword],
      ['run/sf-secrets/replication-password.previous', 'file', '400', 999, 999, ''],
      ['run/sf-secrets/tls-cert', 'file', '400', 999, 999, tls.cert],
      ['run/sf-secrets/tls-key', 'file', '400', 999, 999, tls.key],
      ['run/sf-secrets/tls-ca', 'file', '400', 999, 999, tls.ca],
    ],
  );

  // A standalone container (no replication) gets the admin password and the TLS files only.
  const standalone = containerCreateOptions(identity, record, entry, secret);
  assert.deepEqual(Object.keys(standalone.secretFiles.files), [
    'admin-password',
    'admin-password.previous',
    'tls-cert',
    'tls-key',
    'tls-ca',
  ]);

  // While a rotation runs, the replaced passwords travel beside the new ones.
  const rotating = containerCreateOptions(
    identity,
    record,
    entry,
    { ...secret, generation: 1, previous: { adminPassword: 'old-admin-pw', replicationPassword: 'old-repl-pw' } },
    { role: 'replica', generation: 0, volume: 'v', env: {} },
  );
  assert.equal(rotating.secretFiles.files['admin-password.previous'], 'old-admin-pw');
  assert.equal(rotating.secretFiles.files['replication-password.previous'], 'old-repl-pw');
  assert.ok(!JSON.stringify(rotating.options).includes('old-admin-pw'), 'never in the create options');
  assert.ok(!standalone.options.Env?.some((e) => e.startsWith('SF_REPLICATION_PASSWORD_FILE=')));
});

test('refuses a plan the catalog lacks and secret paths a tar could abuse', async () => {
  const entry = (await Catalog.load()).byServiceName('postgres');
  assert.ok(entry);
  assert.throws(
    () => containerCreateOptions(identity, assignment('huge'), entry, secret),
    /plan huge of service postgres/,
  );
  const spec = { dir: '/run/sf-secrets', uid: 999, gid: 999 };
  await assert.rejects(secretFilesArchive({ spec, files: { '../etc/passwd': 'x' } }), /not one path segment/);
  await assert.rejects(secretFilesArchive({ spec: { ...spec, dir: '/run/../etc' }, files: {} }), /not a plain path/);
  await assert.rejects(secretFilesArchive({ spec: { ...spec, dir: 'run' }, files: {} }), /not a plain path/);
});

test('a TLS service gets the node certificate as files, the plan mode and the peer check in its env', async () => {
  const catalog = await Catalog.load();
  const postgres = catalog.byServiceName('postgres');
  const redis = catalog.byServiceName('redis');
  assert.ok(postgres?.runtime.tls && redis?.runtime.tls, 'both catalog images serve TLS');
  const spec = containerCreateOptions(identity, assignment('small'), postgres, secret);
  const env = spec.options.Env ?? [];
  for (const expected of [
    'SF_TLS_CERT_FILE=/run/sf-secrets/tls-cert',
    'SF_TLS_KEY_FILE=/run/sf-secrets/tls-key',
    'SF_TLS_CA_FILE=/run/sf-secrets/tls-ca',
    'SF_TLS_CLIENTS=required',
    // Peers stream from node addresses (peerAddress node): the name is checked.
    'SF_TLS_PEER_VERIFY=verify-full',
  ]) {
    assert.ok(env.includes(expected), expected);
  }
  // The key is in no variable, nor anywhere in what Docker is told.
  assert.ok(!JSON.stringify(spec.options).includes('PRIVATE KEY'));
  // Replicas on one shared engine stream from container addresses: the CA is checked, not the name.
  const shared = { ...bare, serviceTls: await loadContainerTls(pki.serviceTls('n1'), 'container') };
  assert.ok(
    containerCreateOptions(shared, assignment('small'), postgres, secret).options.Env?.includes(
      'SF_TLS_PEER_VERIFY=verify-ca',
    ),
  );
  // A plan that makes client TLS optional says so to the image.
  const small = postgres.plans.small ?? assert.fail('plan small');
  const optional = { ...postgres, plans: { ...postgres.plans, small: { ...small, tls: 'optional' as const } } };
  assert.ok(
    containerCreateOptions(identity, assignment('small'), optional, secret).options.Env?.includes(
      'SF_TLS_CLIENTS=optional',
    ),
  );

  // Without the node's certificate a TLS service is not started in clear: refused, saying why.
  assert.throws(
    () => containerCreateOptions(bare, assignment('small'), postgres, secret),
    (error: unknown) =>
      error instanceof InvalidConfigError &&
      /serves TLS .* has no service certificate \(serviceTls\)/.test(error.message),
  );
  // A service without runtime.tls gets none of it.
  const { tls: _none, ...runtime } = postgres.runtime;
  const { tls: _planTls, ...smallPlan } = small;
  const plain = { ...postgres, runtime, plans: { small: smallPlan } };
  const plainEnv = containerCreateOptions(bare, assignment('small'), plain, secret).options.Env ?? [];
  assert.ok(!plainEnv.some((e) => e.startsWith('SF_TLS_')));
});
