import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AssignmentRecord, Catalog, type InstanceSecret } from '@service-foundry/core';
import { extract } from 'tar-stream';
import { containerCreateOptions, pidsLimit } from '../src/container-spec.js';
import { replicationEnv } from '../src/replication-spec.js';
import { secretFilesArchive } from '../src/secret-files.js';

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
const identity = { clusterId: 'c1', node: 'n1', address: '127.0.1.1' };

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
  assert.equal(pidsLimit({ service: 512, router: 400 }), 1088);

  const entries = await entriesOf(await secretFilesArchive(spec.secretFiles));
  assert.deepEqual(
    entries.map((e) => [e.name, e.type, e.mode.toString(8), e.uid, e.gid, e.body]),
    [
      ['run/sf-secrets/', 'directory', '500', 999, 999, ''],
      ['run/sf-secrets/admin-password', 'file', '400', 999, 999, secret.adminPassword],
      ['run/sf-secrets/replication-password', 'file', '400', 999, 999, secret.replicationPassword],
    ],
  );

  // A standalone container (no replication) gets the admin password only.
  const standalone = containerCreateOptions(identity, record, entry, secret);
  assert.deepEqual(Object.keys(standalone.secretFiles.files), ['admin-password']);
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
