import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FenceHistoryEntry } from '@service-foundry/fencing';
import { assertOsbError, call, type Harness, startHarness, uniqueId, username } from './helpers.js';

describe('broker: fencing operator API', () => {
  let h: Harness;
  let dir: string;
  const secret = 'ipmi-password-42';

  before(async () => {
    h = await startHarness();
    dir = await mkdtemp(join(tmpdir(), 'sf-broker-fencing-'));
  });
  after(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** fence_dummy (Debian fence-agents) keeping the node's power state in a file. */
  async function dummyLevels(node: string) {
    const statusFile = join(dir, `${node}.power`);
    await writeFile(statusFile, 'on');
    const levels = [
      {
        devices: [
          { name: 'dummy', agent: 'fence_dummy', options: { status_file: statusFile, password: secret }, retries: 0 },
        ],
      },
    ];
    return { levels, statusFile };
  }

  const devicesPath = (node: string) => `/sf/v1/nodes/${node}/fence-devices`;
  const storedDevices = async (node: string) => h.client.get(h.keys.fenceDevices(node)).string();

  it('stores validated fence devices and never answers a secret back', async () => {
    const node = uniqueId('node');
    const { levels } = await dummyLevels(node);
    const put = await call(h.broker.url, 'PUT', devicesPath(node), {
      body: { levels },
      headers: { 'x-sf-operator': 'alice' },
    });
    assert.equal(put.status, 200, put.text);
    assert.ok(!put.text.includes(secret));
    const shown = put.body as {
      levels: { devices: { options: Record<string, unknown>; timeoutSeconds: number; retries: number }[] }[];
      updatedBy: string;
    };
    assert.equal(shown.levels[0]?.devices[0]?.options.password, '[redacted]');
    assert.equal(shown.levels[0]?.devices[0]?.timeoutSeconds, 30);
    assert.equal(shown.updatedBy, 'alice');
    assert.ok((await storedDevices(node))?.includes(secret), 'the controller needs the real password');

    const got = await call(h.broker.url, 'GET', devicesPath(node));
    assert.equal(got.status, 200);
    assert.ok(!got.text.includes(secret));

    // Sending the redacted config back (one option edited) keeps the stored password.
    const edited = structuredClone(shown);
    const editedDevice = edited.levels[0]?.devices[0];
    assert.ok(editedDevice);
    editedDevice.retries = 2;
    const roundTrip = await call(h.broker.url, 'PUT', devicesPath(node), {
      body: { levels: edited.levels },
    });
    assert.equal(roundTrip.status, 200, roundTrip.text);
    assert.ok((await storedDevices(node))?.includes(secret));
    assert.equal((roundTrip.body as typeof shown).updatedBy, username);
  });

  it('rejects bad device configs and changes nothing', async () => {
    const node = uniqueId('node');
    const { levels } = await dummyLevels(node);
    assert.equal((await call(h.broker.url, 'PUT', devicesPath(node), { body: { levels } })).status, 200);
    const before = await storedDevices(node);
    for (const body of [
      { levels: [{ devices: [{ agent: 'fence_dummy; reboot' }] }] },
      { levels: [{ devices: [{ agent: 'fence_dummy', options: { password: 'x\naction=on' } }] }] },
      { levels: [] },
      { levels, extra: true },
    ]) {
      const res = await call(h.broker.url, 'PUT', devicesPath(node), { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assertOsbError(res.body, 'BadRequest');
    }
    assert.equal(await storedDevices(node), before);
    assert.equal((await call(h.broker.url, 'GET', devicesPath('bad..name/x'))).status, 404, 'a slash is no route');
    assert.equal((await call(h.broker.url, 'GET', devicesPath('-bad'))).status, 400);
    assert.equal((await call(h.broker.url, 'GET', devicesPath(uniqueId('none')))).status, 404);
  });

  it('fences and unfences by hand, audited with the operator’s name', async () => {
    const node = uniqueId('node');
    const { levels, statusFile } = await dummyLevels(node);
    await call(h.broker.url, 'PUT', devicesPath(node), { body: { levels } });

    const fenced = await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/fence`, {
      body: { reason: 'disk controller flapping' },
      headers: { 'x-sf-operator': 'bob' },
    });
    assert.equal(fenced.status, 200, fenced.text);
    assert.deepEqual(
      (({ state, level, ranDevices }) => ({ state, level, ranDevices }))(fenced.body as Record<string, unknown>),
      { state: 'fenced', level: 1, ranDevices: true },
    );
    assert.ok(!fenced.text.includes(secret));
    assert.equal(await readFile(statusFile, 'utf8'), 'off');
    const state = await call(h.broker.url, 'GET', `/sf/v1/nodes/${node}/fence`);
    assert.equal((state.body as { state: string; by: string }).state, 'fenced');
    assert.equal((state.body as { by: string }).by, 'bob');

    const unfenced = await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/unfence`, {
      headers: { 'x-sf-operator': 'carol' },
    });
    assert.equal(unfenced.status, 200, unfenced.text);
    assert.equal((unfenced.body as { state: string }).state, 'unfenced');
    assert.equal(await readFile(statusFile, 'utf8'), 'on');

    const history = await call(h.broker.url, 'GET', `/sf/v1/fencing-history?node=${node}`);
    assert.equal(history.status, 200);
    const entries = history.body as FenceHistoryEntry[];
    assert.deepEqual(
      entries.map((e) => [e.action, e.result, e.by, e.reason]),
      [
        ['unfence', 'unfenced', 'carol', 'manual unfence by carol'],
        ['fence', 'fenced', 'bob', 'disk controller flapping'],
      ],
    );
    assert.ok(!history.text.includes(secret));
    const one = await call(h.broker.url, 'GET', '/sf/v1/fencing-history?limit=1');
    assert.equal((one.body as unknown[]).length, 1);
  });

  it('reports a failed fence (no devices) as such', async () => {
    const node = uniqueId('node');
    const res = await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/fence`);
    assert.equal(res.status, 200);
    assert.equal((res.body as { state: string }).state, 'failed');
    assert.equal((res.body as { reason: string }).reason, `no fence devices configured for node ${node}`);
    // Basic-auth user when no operator header is sent.
    const [entry] = (await call(h.broker.url, 'GET', `/sf/v1/fencing-history?node=${node}`))
      .body as FenceHistoryEntry[];
    assert.equal(entry?.by, username);
  });

  it('rejects bad requests', async () => {
    const node = uniqueId('node');
    const bad = [
      await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/fence`, { headers: { 'x-sf-operator': 'has space' } }),
      await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/fence`, { body: { reason: 7 } }),
      await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/fence`, { body: { level: 1 } }),
      await call(h.broker.url, 'POST', `/sf/v1/nodes/${node}/unfence`, { body: { powerOn: 'no' } }),
      await call(h.broker.url, 'GET', '/sf/v1/fencing-history?limit=0'),
      await call(h.broker.url, 'GET', '/sf/v1/fencing-history?limit=abc'),
    ];
    for (const res of bad) assert.equal(res.status, 400, res.text);
    assert.equal((await call(h.broker.url, 'GET', '/sf/v1/fencing-history', { auth: null })).status, 401);
    assert.equal(await h.client.get(h.keys.fence(node)).string(), null, 'nothing was fenced');
  });
});
