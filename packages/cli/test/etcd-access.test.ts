import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  type ComponentKind,
  componentKinds,
  connectEtcd,
  type Etcd3,
  EtcdPermissionDeniedError,
  etcdUsers,
  Keyspace,
  keyFamilies,
} from '@service-foundry/core';
import { makeTempDir, startTestEtcd, type TempDir, type TestEtcd } from '@service-foundry/test-support';
import { applyClusterAccess } from '../src/cluster/etcd-bootstrap.js';
import { ClusterPki } from '../src/cluster/pki.js';

const run = promisify(execFile);

/** True when etcd let the request through, false when it refused it for lack of permission (any other error fails). */
function permitted(request: Promise<unknown>, what: string): Promise<boolean> {
  return request.then(
    () => true,
    (error: unknown) => {
      assert.ok(error instanceof EtcdPermissionDeniedError, `${what}: ${error}`);
      return false;
    },
  );
}

/**
 * etcd as `sf up` runs it: TLS only, client certificates required, RBAC on. Every
 * component identity is tried against every key family of the access table, both ways:
 * what the table grants works, what it does not grant is refused by etcd itself.
 */
describe('etcd access: TLS, client certificates and one role per component', () => {
  let dir: TempDir;
  let pki: ClusterPki;
  let etcd: TestEtcd;
  const keys = new Keyspace('/sf');
  const nodes = ['node-1', 'node-2'];
  const clients = new Map<string, Etcd3>();
  const as = (user: string): Etcd3 => {
    let client = clients.get(user);
    if (!client) {
      client = connectEtcd({ endpoints: [etcd.endpoint], tls: pki.client(user), requestTimeoutMs: 3000 });
      clients.set(user, client);
    }
    return client;
  };

  before(async () => {
    dir = await makeTempDir('sf-etcd-access');
    pki = new ClusterPki(join(dir.path, 'pki'));
    await pki.ensure(nodes);
    etcd = await startTestEtcd({ tls: { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) } });
    const cluster = { keyspaceRoot: keys.root, nodes: nodes.map((name) => ({ name, address: '127.0.0.1' })) };
    await applyClusterAccess([etcd.endpoint], cluster as never, pki);
  });

  after(async () => {
    for (const client of clients.values()) client.close();
    await etcd?.stop();
    await dir?.remove();
  });

  it('keeps every key 0600 in a 0700 folder', async () => {
    assert.equal((await stat(pki.dir)).mode & 0o777, 0o700);
    for (const file of [pki.caKeyFile, pki.secretsKeyFile, pki.server.keyFile, pki.client('sf-router').keyFile]) {
      assert.equal((await stat(file)).mode & 0o777, 0o600, file);
    }
  });

  it('refuses clients without a certificate, on the gRPC port and on the JSON gateway', async () => {
    const anonymous = await run('curl', [
      '-sk',
      '-m',
      '5',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `${etcd.endpoint}/v3/kv/range`,
      '-d',
      '{"key":"L3Nm"}',
    ]).then(
      (r) => r.stdout,
      (e: { code?: number }) => `exit ${e.code}`,
    );
    assert.notEqual(anonymous, '200', 'the TLS handshake fails without a client certificate');
    const plain = await run('curl', [
      '-s',
      '-m',
      '5',
      `${etcd.endpoint.replace('https:', 'http:')}/v3/kv/range`,
      '-d',
      '{"key":"L3Nm"}',
    ]).then(
      (r) => r.stdout,
      (e: { code?: number }) => `exit ${e.code}`,
    );
    assert.doesNotMatch(plain, /kvs/);
  });

  it('a certificate from the gateway does not get in either: the gateway ignores its CN once auth is on', async () => {
    const identity = pki.client('sf-broker');
    const res = await run('curl', [
      '-s',
      '-m',
      '5',
      '--cacert',
      identity.caFile,
      '--cert',
      identity.certFile,
      '--key',
      identity.keyFile,
      `${etcd.endpoint}/v3/kv/range`,
      '-d',
      JSON.stringify({ key: Buffer.from(keys.secrets()).toString('base64') }),
    ]);
    assert.doesNotMatch(res.stdout, /"kvs"/);
  });

  const kinds: Array<{ kind: ComponentKind; user: string }> = [
    { kind: 'broker', user: etcdUsers.broker },
    { kind: 'scheduler', user: etcdUsers.scheduler },
    { kind: 'router', user: etcdUsers.router },
    { kind: 'agent', user: etcdUsers.agent('node-1') },
  ];

  for (const { kind, user } of kinds) {
    it(`${user} can do exactly what the table grants the ${kind}`, async () => {
      const root = as(etcdUsers.root);
      const client = as(user);
      for (const family of keyFamilies) {
        const key = `${family.prefix(keys)}probe-${kind}`;
        await root.put(key).value('seed').exec();
        const access = family.access[kind];
        const canRead = access === 'r' || access === 'rw';
        const canWrite = access === 'w' || access === 'rw';
        const read = await permitted(client.get(key).string(), `${user} read ${key}`);
        assert.equal(read, canRead, `${user} reading ${family.family}`);
        const wrote = await permitted(client.put(key).value('x').exec(), `${user} write ${key}`);
        assert.equal(wrote, canWrite, `${user} writing ${family.family}`);
      }
    });
  }

  it("an agent writes its own node record and assignments, never another node's", async () => {
    const agent = as(etcdUsers.agent('node-1'));
    await agent.put(keys.node('node-1')).value('{}').exec();
    await agent
      .delete()
      .key(keys.assignment('node-1', 'i1', 0))
      .exec();
    await assert.rejects(agent.put(keys.node('node-2')).value('{}').exec(), EtcdPermissionDeniedError);
    await assert.rejects(
      agent
        .put(keys.assignment('node-2', 'i1', 0))
        .value('{}')
        .exec(),
      EtcdPermissionDeniedError,
    );
    await assert.rejects(agent.get(keys.assignment('node-2', 'i1', 0)).string(), EtcdPermissionDeniedError);
  });

  it('no component but root may change users, roles or authentication', async () => {
    for (const { user } of kinds) {
      await assert.rejects(as(user).user('intruder').create('intruder-password'), EtcdPermissionDeniedError, user);
      await assert.rejects(as(user).auth.authDisable(), EtcdPermissionDeniedError, user);
    }
  });

  it('docs/keyspace.md shows the same table', async () => {
    const doc = await readFile(resolve(import.meta.dirname, '../../../docs/keyspace.md'), 'utf8');
    const table = /<!-- etcd-access-matrix:start -->\n([\s\S]*?)\n<!-- etcd-access-matrix:end -->/.exec(doc)?.[1];
    const expected = [
      `| key family | ${componentKinds.join(' | ')} |`,
      `|${' --- |'.repeat(componentKinds.length + 1)}`,
      ...keyFamilies.map((f) => `| \`${f.family}\` | ${componentKinds.map((k) => f.access[k] ?? '—').join(' | ')} |`),
    ].join('\n');
    assert.equal(table, expected);
  });

  it('running the bootstrap again changes nothing and keeps authentication on', async () => {
    const cluster = { keyspaceRoot: keys.root, nodes: nodes.map((name) => ({ name, address: '127.0.0.1' })) };
    await applyClusterAccess([etcd.endpoint], cluster as never, pki);
    await assert.rejects(as(etcdUsers.router).get(keys.secret('x')).string(), EtcdPermissionDeniedError);
    assert.equal(await as(etcdUsers.router).get(`${keys.routes()}probe-router`).string(), 'seed');
  });
});
