import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningBroker, startBroker } from '@service-foundry/broker';
import {
  connectEtcd,
  createLogger,
  type Etcd3,
  type EtcdProcess,
  instanceCodec,
  Keyspace,
  readRecord,
  SecretBox,
  startEtcd,
} from '@service-foundry/core';

const cliMain = resolve(import.meta.dirname, '../dist/main.js');
const platform = { username: 'cf-platform', password: 'platform-horse-battery' };
const operator = { username: 'ops-bob', password: 'operator-horse-battery' };
const postgresServiceId = '4f6f0a8e-5d8a-4c43-9a57-2a4f1d3c6b01';
const smallPlanId = 'b0c6c1d2-83a4-4a8e-8d2f-6e1f0c9a7b11';

/** `sf` names instances the way the operator API resolves them: one resolver, in the broker. */
describe('cli: instance names are resolved by the broker, per space', () => {
  let dir: string;
  let etcd: EtcdProcess;
  let client: Etcd3;
  let broker: RunningBroker;
  const keys = new Keyspace(`/cli-names-${randomBytes(6).toString('hex')}`);
  const inSpaceA = `pg-a-${randomBytes(4).toString('hex')}`;
  const inSpaceB = `pg-b-${randomBytes(4).toString('hex')}`;

  const sf = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const child = spawn(process.execPath, [cliMain, ...args], {
      env: { ...process.env, SF_HOME: join(dir, 'sf-home') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((done) => child.on('close', done));
    return { code, stdout, stderr };
  };

  const provision = async (id: string, space: string) => {
    const res = await fetch(`${broker.url}/v2/service_instances/${id}?accepts_incomplete=true`, {
      method: 'PUT',
      headers: {
        authorization: `Basic ${Buffer.from(`${platform.username}:${platform.password}`).toString('base64')}`,
        'x-broker-api-version': '2.17',
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        service_id: postgresServiceId,
        plan_id: smallPlanId,
        organization_guid: 'org-1',
        space_guid: space,
        context: { platform: 'cloudfoundry', instance_name: 'orders' },
      }),
    });
    assert.equal(res.status, 202, await res.text());
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sf-cli-names-'));
    etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
    client = connectEtcd({ endpoints: [etcd.endpoint] });
    broker = await startBroker(
      {
        etcdEndpoints: [etcd.endpoint],
        keyspaceRoot: keys.root,
        secretsKeyFile: await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key')),
        port: 0,
        osb: platform,
        operators: [{ ...operator, role: 'operator' }],
      },
      { log: createLogger({ name: 'cli-names-test', level: 'silent' }) },
    );
    await mkdir(join(dir, 'sf-home'), { mode: 0o700 });
    await writeFile(join(dir, 'sf-home', 'cli.json'), JSON.stringify({ url: broker.url, ...operator }), {
      mode: 0o600,
    });
    await provision(inSpaceA, 'space-a');
    await provision(inSpaceB, 'space-b');
  });
  after(async () => {
    await broker?.stop();
    client?.close();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a name held in two spaces is refused with the spaces listed, and nothing is deleted', async () => {
    const shown = await sf('service', 'orders');
    assert.equal(shown.code, 1, shown.stderr);
    assert.match(shown.stderr, /2 instances are named "orders"/);
    assert.match(shown.stderr, /space "space-a" \(id pg-a-/);
    assert.match(shown.stderr, /space "space-b" \(id pg-b-/);
    const deleted = await sf('delete-service', 'orders', '--no-wait');
    assert.equal(deleted.code, 1, deleted.stderr);
    for (const id of [inSpaceA, inSpaceB]) {
      assert.equal((await readRecord(client, instanceCodec, keys.instance(id)))?.value.phase, 'provisioning');
    }
  });

  it('an id always names one instance', async () => {
    const shown = await sf('service', inSpaceB, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    const detail = JSON.parse(shown.stdout) as { id: string; scope: unknown };
    assert.equal(detail.id, inSpaceB);
    assert.deepEqual(detail.scope, { organization: 'org-1', space: 'space-b' });
  });

  it('sf creates in the operators’ scope, where the name then resolves; the list shows each space', async () => {
    const created = await sf('create-service', 'postgres', 'small', 'orders', '--no-wait');
    assert.equal(created.code, 0, created.stderr);
    const again = await sf('create-service', 'postgres', 'small', 'billing', '--no-wait');
    assert.equal(again.code, 0, again.stderr);
    const billing = await sf('service', 'billing', '--json');
    assert.equal(billing.code, 0, billing.stderr);
    assert.equal((JSON.parse(billing.stdout) as { scope: unknown }).scope, null);
    const missing = await sf('service', 'nope');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /service instance "nope" not found/);
    const dots = await sf('service', '..');
    assert.equal(dots.code, 2, 'a name URL parsing would read as a path step is refused before any request');
    const listed = await sf('services');
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.split('\n').filter((line) => line.startsWith('orders'));
    assert.deepEqual(rows.map((row) => row.split(/\s+/)[1]).sort(), ['-', 'org-1/space-a', 'org-1/space-b']);
  });
});
