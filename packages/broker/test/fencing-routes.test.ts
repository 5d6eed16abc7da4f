import assert from 'node:assert/strict';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { json, type NodeAllocation, readSealed } from '@service-foundry/core';
import { type FenceHistoryEntry, fenceDevicesCodec } from '@service-foundry/fencing';
import { secretBox, suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, username } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

describe('broker: fencing operator API', () => {
  let h: Harness;
  const dir = suiteTempDir('sf-broker-fencing');
  const secret = 'ipmi-password-42';

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
  });

  /** A node the cluster knows: its live node record, as its agent writes it. */
  async function liveNode(prefix = 'node'): Promise<string> {
    const node = uniqueId(prefix);
    await h.putNode(node, { address: '10.0.0.9' });
    return node;
  }

  /**
   * Level 1: Debian's fence_ipmilan with a password (it fails here: no ipmitool, no BMC);
   * level 2: fence_dummy keeping the node's power state in a file.
   */
  async function ipmiThenDummy(node: string) {
    const statusFile = join(dir.path, `${node}.power`);
    await writeFile(statusFile, 'on');
    const levels = [
      {
        devices: [
          {
            name: 'ipmi',
            agent: 'fence_ipmilan',
            options: { ip: '127.0.0.1', username: 'admin', password: secret, lanplus: true },
            retries: 0,
          },
        ],
      },
      { devices: [{ name: 'dummy', agent: 'fence_dummy', options: { status_file: statusFile }, retries: 0 }] },
    ];
    return { levels, statusFile };
  }

  const devicesPath = (node: string) => `/sf/v1/nodes/${node}/fence-devices`;
  /** The stored devices as the controller reads them: opened with the secrets key. */
  const storedDevices = async (node: string) => {
    const stored = await readSealed(h.client, secretBox, fenceDevicesCodec, h.keys.fenceDevices(node));
    return stored ? JSON.stringify(stored.value) : null;
  };
  const rawDevices = async (node: string) => h.client.get(h.keys.fenceDevices(node)).string();

  it('stores validated fence devices and never answers a secret back', async () => {
    const node = await liveNode();
    const { levels } = await ipmiThenDummy(node);
    const put = await h.call('PUT', devicesPath(node), {
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
    assert.ok(!(await rawDevices(node))?.includes(secret), 'but etcd holds it sealed, never in clear');

    const got = await h.call('GET', devicesPath(node));
    assert.equal(got.status, 200);
    assert.ok(!got.text.includes(secret));

    // Sending the redacted config back (one option edited) keeps the stored password.
    const edited = structuredClone(shown);
    const editedDevice = edited.levels[0]?.devices[0];
    assert.ok(editedDevice);
    editedDevice.retries = 2;
    const roundTrip = await h.call('PUT', devicesPath(node), {
      body: { levels: edited.levels },
    });
    assert.equal(roundTrip.status, 200, roundTrip.text);
    assert.ok((await storedDevices(node))?.includes(secret));
    assert.equal((roundTrip.body as typeof shown).updatedBy, username);
  });

  it('rejects bad device configs, saying why, and changes nothing', async () => {
    const node = await liveNode();
    const { levels } = await ipmiThenDummy(node);
    assert.equal((await h.call('PUT', devicesPath(node), { body: { levels } })).status, 200);
    const before = await storedDevices(node);
    const device = (fields: Record<string, unknown>) => ({ levels: [{ devices: [fields] }] });
    for (const [body, why] of [
      [device({ agent: 'fence_dummy; reboot' }), /\/levels\/0\/devices\/0\/agent must match pattern/],
      [device({ agent: 'bash' }), /agent: fence agent "bash" refused: not a fence agent name/],
      [device({ agent: 'fence_ipmilan', options: { password: 'x\naction=on' } }), /must match pattern/],
      [{ levels: [] }, /must NOT have fewer than 1 items/],
      [{ levels, extra: true }, /unknown field "extra"/],
      [device({ agent: 'fence_dummy', options: { password: 'x' } }), /fence_dummy has no option password/],
      [device({ agent: 'fence_ipmilan', options: { ipport: 'http' } }), /options\/ipport: must be an integer/],
      [device({ agent: 'fence_ipmilan', options: { password_script: 'id' } }), /refused \(matches \*_script\)/],
      [device({ agent: 'fence_ipmilan', options: { ip: '1.2.3.4 -oProxyCommand=id' } }), /must not contain spaces/],
      [device({ agent: '/usr/bin/fence_x' }), /\/usr\/bin is not an allowed agent directory/],
      [device({ agent: 'fence_not_installed' }), /no fence_not_installed in the allowed agent directories/],
    ] as const) {
      const res = await h.call('PUT', devicesPath(node), { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assertOsbError(res.body, 'BadRequest');
      assert.match((res.body as { description: string }).description, why);
    }
    assert.equal(await storedDevices(node), before);
    assert.equal((await h.call('GET', devicesPath('bad..name/x'))).status, 404, 'a slash is no route');
    assert.equal((await h.call('GET', devicesPath('-bad'))).status, 400);
    assert.equal((await h.call('GET', devicesPath(uniqueId('none')))).status, 404);
  });

  it('the `sh` attack: refused with 400, nothing stored, and fencing runs nothing', async () => {
    const node = await liveNode();
    const marker = join(dir.path, `${node}.pwned`);
    // Options become `key=value` lines on the agent's stdin, which sh would execute as root.
    for (const agent of ['sh', '/bin/sh', '/usr/sbin/../../bin/sh', 'fence_x/../../../bin/sh']) {
      const res = await h.call('PUT', devicesPath(node), {
        body: {
          levels: [{ devices: [{ agent, options: { x: `1; touch ${marker}` }, confirm: 'exit-code' }] }],
        },
      });
      assert.equal(res.status, 400, res.text);
      assert.match((res.body as { description: string }).description, /\/levels\/0\/devices\/0\/agent/);
    }
    assert.equal(await storedDevices(node), null, 'nothing stored');

    const fenced = await h.call('POST', `/sf/v1/nodes/${node}/fence`);
    assert.equal(fenced.status, 200, fenced.text);
    assert.equal((fenced.body as { state: string }).state, 'failed');
    assert.equal((fenced.body as { ranDevices: boolean }).ranDevices, false);
    await assert.rejects(access(marker), { code: 'ENOENT' }, 'the payload never ran');
  });

  it('refuses unknown nodes with 404 and writes nothing', async () => {
    const node = uniqueId('ghost');
    const { levels } = await ipmiThenDummy(node);
    for (const [method, path, body] of [
      ['PUT', devicesPath(node), { levels }],
      ['POST', `/sf/v1/nodes/${node}/fence`, { reason: 'typo' }],
      ['POST', `/sf/v1/nodes/${node}/unfence`, {}],
    ] as const) {
      const res = await h.call(method, path, { body });
      assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      assertOsbError(res.body, 'NotFound');
      assert.equal(
        (res.body as { description: string }).description,
        `node ${node} is not known to this cluster (no node record, allocation ledger, fence record or fence devices)`,
      );
    }
    assert.equal(await storedDevices(node), null);
    assert.equal(await h.client.get(h.keys.fence(node)).string(), null);
    const history = await h.call('GET', `/sf/v1/fencing-history?node=${node}`);
    assert.deepEqual(history.body, [], 'not even a history entry');
  });

  it('a dead node known only by its allocation ledger can be configured and fenced', async () => {
    const node = uniqueId('dead');
    const ledger: NodeAllocation = {
      node,
      replicas: {
        'db-x/0': { instanceId: 'db-x', ordinal: 0, resources: { cpuMillis: 500, memoryMb: 512, diskMb: 1024 } },
      },
    };
    await h.client.put(h.keys.allocation(node)).value(json(ledger)).exec();
    const { levels, statusFile } = await ipmiThenDummy(node);
    const put = await h.call('PUT', devicesPath(node), { body: { levels } });
    assert.equal(put.status, 200, put.text);
    const fenced = await h.call('POST', `/sf/v1/nodes/${node}/fence`, { body: { reason: 'lost' } });
    assert.equal(fenced.status, 200, fenced.text);
    assert.equal((fenced.body as { state: string }).state, 'fenced');
    assert.equal(await readFile(statusFile, 'utf8'), 'off');
  });

  it('fences and unfences by hand, audited with the operator’s name', async () => {
    const node = await liveNode();
    const { levels, statusFile } = await ipmiThenDummy(node);
    await h.call('PUT', devicesPath(node), { body: { levels } });

    const fenced = await h.call('POST', `/sf/v1/nodes/${node}/fence`, {
      body: { reason: 'disk controller flapping' },
      headers: { 'x-sf-operator': 'bob' },
    });
    assert.equal(fenced.status, 200, fenced.text);
    assert.deepEqual(
      (({ state, level, ranDevices }) => ({ state, level, ranDevices }))(fenced.body as Record<string, unknown>),
      { state: 'fenced', level: 2, ranDevices: true },
    );
    // Level 1 (fence_ipmilan) ran and failed: its output is in the history, its password is not.
    const outcome = (fenced.body as { history: FenceHistoryEntry }).history.levels[0]?.devices[0];
    assert.equal(outcome?.ok, false);
    assert.match(outcome?.reason ?? '', /off failed: exit code 1/);
    assert.equal(outcome?.options.password, '[redacted]');
    assert.ok(!fenced.text.includes(secret));
    assert.equal(await readFile(statusFile, 'utf8'), 'off');
    const state = await h.call('GET', `/sf/v1/nodes/${node}/fence`);
    assert.equal((state.body as { state: string; by: string }).state, 'fenced');
    assert.equal((state.body as { by: string }).by, 'bob');

    const unfenced = await h.call('POST', `/sf/v1/nodes/${node}/unfence`, {
      headers: { 'x-sf-operator': 'carol' },
    });
    assert.equal(unfenced.status, 200, unfenced.text);
    assert.equal((unfenced.body as { state: string }).state, 'unfenced');
    assert.equal(await readFile(statusFile, 'utf8'), 'on');

    const history = await h.call('GET', `/sf/v1/fencing-history?node=${node}`);
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
    const one = await h.call('GET', '/sf/v1/fencing-history?limit=1');
    assert.equal((one.body as unknown[]).length, 1);
  });

  it('reports a failed fence (no devices) as such', async () => {
    const node = await liveNode();
    const res = await h.call('POST', `/sf/v1/nodes/${node}/fence`);
    assert.equal(res.status, 200);
    assert.equal((res.body as { state: string }).state, 'failed');
    assert.equal((res.body as { reason: string }).reason, `no fence devices configured for node ${node}`);
    // Basic-auth user when no operator header is sent.
    const [entry] = (await h.call('GET', `/sf/v1/fencing-history?node=${node}`)).body as FenceHistoryEntry[];
    assert.equal(entry?.by, username);
  });

  it('rejects bad requests', async () => {
    const node = await liveNode();
    const bad = [
      await h.call('POST', `/sf/v1/nodes/${node}/fence`, { headers: { 'x-sf-operator': 'has space' } }),
      await h.call('POST', `/sf/v1/nodes/${node}/fence`, { body: { reason: 7 } }),
      await h.call('POST', `/sf/v1/nodes/${node}/fence`, { body: { level: 1 } }),
      await h.call('POST', `/sf/v1/nodes/${node}/unfence`, { body: { powerOn: 'no' } }),
      await h.call('GET', '/sf/v1/fencing-history?limit=0'),
      await h.call('GET', '/sf/v1/fencing-history?limit=abc'),
    ];
    for (const res of bad) assert.equal(res.status, 400, res.text);
    assert.equal((await h.call('GET', '/sf/v1/fencing-history', { auth: null })).status, 401);
    assert.equal(await h.client.get(h.keys.fence(node)).string(), null, 'nothing was fenced');
  });
});
