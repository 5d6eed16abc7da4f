import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidConfigError, waitFor } from '@service-foundry/core';
import { secretsKeyFile, suiteTempDir, uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  basicAuth,
  brokerLogins,
  call,
  operatorLogin,
  osbLogin,
  provisionBody,
  viewerLogin,
} from '@service-foundry/test-support/broker-calls';
import { loadBrokerConfig } from '../src/index.js';
import { type Harness, rawHttp, startBrokerMain, startHarness } from './helpers.js';

describe('broker: two credentials — the platform reaches /v2, operators /sf/v1, viewers only read', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    await h.putNode('node-a');
  });
  after(async () => {
    await h?.close();
  });

  it('the platform login serves the OSB API and gets 403 on every operator route, changing nothing', async () => {
    assert.equal((await h.call('GET', '/v2/catalog', { auth: osbLogin })).status, 200);
    const before = await h.dump();
    for (const [method, path] of [
      ['GET', '/sf/v1/instances'],
      ['GET', '/sf/v1/nodes'],
      ['POST', '/sf/v1/nodes/node-a/drain'],
      ['POST', '/sf/v1/nodes/node-a/fence'],
      ['PUT', '/sf/v1/nodes/node-a/fence-devices'],
      ['POST', '/sf/v1/instances/x/relocate'],
    ] as const) {
      const res = await h.call(method, path, { auth: osbLogin, ...(method === 'GET' ? {} : { body: {} }) });
      assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
      assertOsbError(res.body, 'Forbidden');
      assert.match((res.body as { description: string }).description, /OSB API \(\/v2\/…\) only/);
    }
    assert.equal(await h.dump(), before, 'nothing was fenced, drained or changed');
  });

  it('decides the area on the route Fastify matched: encoded operator paths are still operator paths', async () => {
    for (const path of ['/sf/%761/nodes', '/%73f/v1/nodes', '/sf/v%31/nodes', '/sf/v1/%6Eodes']) {
      const res = await rawHttp(h.broker.url, `GET ${path} HTTP/1.1\r\nAuthorization: ${basicAuth(osbLogin)}`);
      assert.equal(res.status, 403, `${path}: ${res.text}`);
      assertOsbError(res.body, 'Forbidden');
    }
    const viewer = await rawHttp(
      h.broker.url,
      `GET /%762/catalog HTTP/1.1\r\nAuthorization: ${basicAuth(viewerLogin)}`,
    );
    assert.equal(viewer.status, 403, viewer.text);
  });

  it('an operator reaches both APIs; its platform-less provision lands in the operators scope', async () => {
    assert.equal((await h.call('GET', '/sf/v1/nodes', { auth: operatorLogin })).status, 200);
    assert.equal((await h.call('GET', '/v2/catalog', { auth: operatorLogin })).status, 200);
    const id = uniqueId('ops');
    const { organization_guid: _o, space_guid: _s, ...bare } = provisionBody({ context: { instance_name: 'ops-db' } });
    const res = await h.call('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      auth: operatorLogin,
      body: bare,
    });
    assert.equal(res.status, 202, res.text);
    const record = await h.readInstance(id);
    assert.equal(record?.scope, undefined, 'no platform scope: the operators’ own');
    const asPlatform = await h.call('PUT', `/v2/service_instances/${uniqueId('p')}?accepts_incomplete=true`, {
      auth: osbLogin,
      body: bare,
    });
    assert.equal(asPlatform.status, 400, 'the platform must name its organization and space');
  });

  it('a viewer reads the operator API (GET, HEAD) and is refused everything else with 403', async () => {
    for (const path of ['/sf/v1/instances', '/sf/v1/nodes', '/sf/v1/events?limit=5', '/sf/v1/fencing-history']) {
      const res = await h.call('GET', path, { auth: viewerLogin });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
    }
    const head = await h.call('HEAD', '/sf/v1/nodes', { auth: viewerLogin });
    assert.equal(head.status, 200);
    const before = await h.dump();
    for (const [method, path] of [
      ['POST', '/sf/v1/nodes/node-a/cordon'],
      ['POST', '/sf/v1/nodes/node-a/fence'],
      ['DELETE', '/sf/v1/nodes/node-a/fence-devices'],
      ['POST', '/sf/v1/instances/x/backups'],
      ['GET', '/v2/catalog'],
      ['PUT', `/v2/service_instances/${uniqueId('v')}?accepts_incomplete=true`],
    ] as const) {
      const body = method === 'GET' ? {} : { body: provisionBody() };
      const res = await h.call(method, path, { auth: viewerLogin, ...body });
      assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
      assertOsbError(res.body, 'Forbidden');
      assert.match((res.body as { description: string }).description, /ops-viewer \(viewer\) may only read/);
    }
    assert.equal(await h.dump(), before);
  });

  it('401, not 403, for an unknown user or a known user with a wrong password, on every area', async () => {
    for (const auth of [
      { user: 'nobody', password: osbLogin.password },
      { user: operatorLogin.user, password: osbLogin.password },
      { user: osbLogin.user, password: operatorLogin.password },
      { user: viewerLogin.user, password: `${viewerLogin.password}x` },
    ]) {
      for (const path of ['/v2/catalog', '/sf/v1/nodes', '/no-such-route']) {
        const res = await h.call('GET', path, { auth });
        assert.equal(res.status, 401, `${auth.user} ${path}`);
        assertOsbError(res.body, 'Unauthorized');
        assert.equal(res.headers.get('www-authenticate'), 'Basic realm="service-foundry"');
      }
    }
  });

  it('records the authenticated operator as "by" when the client does not name one', async () => {
    const res = await h.call('POST', '/sf/v1/nodes/node-a/cordon', { auth: operatorLogin, body: {} });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { control: { by: string } }).control.by, operatorLogin.user);
  });
});

describe('broker: login configuration', () => {
  const base = { etcdEndpoints: ['http://127.0.0.1:2379'], secretsKeyFile };

  it('refuses a user name used by two logins, no operators, an unknown role and short passwords', () => {
    const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
      [
        'same user name twice',
        { ...brokerLogins, operators: [{ username: osbLogin.user, password: 'x'.repeat(12), role: 'viewer' }] },
        /already the user name of another login/,
      ],
      ['no operator', { ...brokerLogins, operators: [] }, /operators/],
      [
        'unknown role',
        { ...brokerLogins, operators: [{ username: 'a', password: 'x'.repeat(12), role: 'root' }] },
        /role/,
      ],
      ['short password', { ...brokerLogins, osb: { username: 'cf', password: 'short' } }, /password/],
      ['user name with a colon', { ...brokerLogins, osb: { username: 'c:f', password: 'x'.repeat(12) } }, /username/],
      ['the old single login', { username: 'cf', password: 'x'.repeat(12) }, /osb|operators/],
    ];
    for (const [what, logins, mentions] of invalid) {
      assert.throws(
        () => loadBrokerConfig({ ...base, ...logins }),
        (error: unknown) => error instanceof InvalidConfigError && mentions.test(error.message),
        what,
      );
    }
    const config = loadBrokerConfig({ ...base, ...brokerLogins });
    assert.deepEqual(
      config.operators.map((o) => o.role),
      ['operator', 'viewer'],
    );
  });
});

describe('broker: rejected logins are logged without credentials', () => {
  const dir = suiteTempDir('sf-broker-access');
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('logs the 403 with who and why, and never a password or an Authorization header', async () => {
    const file = join(dir.path, 'broker.json');
    const config = { etcdEndpoints: [h.etcd.endpoint], keyspaceRoot: h.keys.root, secretsKeyFile, port: 0 };
    await writeFile(file, JSON.stringify({ ...config, ...brokerLogins }));
    const { run, url } = await startBrokerMain(file);
    try {
      assert.equal((await call(url, 'GET', '/sf/v1/nodes', { auth: osbLogin })).status, 403);
      assert.equal((await call(url, 'POST', '/sf/v1/nodes/n/drain', { auth: viewerLogin })).status, 403);
      assert.equal(
        (await call(url, 'GET', '/v2/catalog', { auth: { user: 'x', password: 'guess-1234' } })).status,
        401,
      );
      const rejected = await waitFor(
        () => {
          const lines = run
            .stdout()
            .split('\n')
            .filter((line) => line.includes('"request rejected"'));
          return lines.length >= 3 ? lines : undefined;
        },
        { description: 'three rejection log lines' },
      );
      assert.match(rejected.join('\n'), /cf-platform \(the platform login\) reaches the OSB API/);
      assert.match(rejected.join('\n'), /ops-viewer \(viewer\) may only read/);
      for (const secret of [osbLogin.password, operatorLogin.password, viewerLogin.password, 'guess-1234']) {
        assert.ok(!run.stdout().includes(secret), 'no password is logged');
      }
      for (const login of [osbLogin, viewerLogin]) assert.ok(!run.stdout().includes(basicAuth(login).slice(6)));
      run.child.kill('SIGTERM');
      assert.deepEqual(await run.exited, { code: 0, signal: null });
    } finally {
      if (run.running()) run.child.kill('SIGKILL');
    }
  });
});
