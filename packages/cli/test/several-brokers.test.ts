import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SchedulerView } from '@service-foundry/api';
import { freePort, json } from '@service-foundry/core';
import { operatorLogin } from '@service-foundry/test-support/broker-calls';
import { BrokerClient } from '../src/broker-client.js';
import { brokersOf, etcdClientUrl, etcdMembersOf, schedulersOf } from '../src/cluster/cluster-file.js';
import { componentNames } from '../src/commands/up.js';
import { BrokerError } from '../src/errors.js';
import { type CliHarness, startCliHarness } from './helpers.js';

describe('several brokers and schedulers, as sf up runs them', () => {
  let cli: CliHarness;
  /** A port nothing listens on: a crashed broker. */
  let closedUrl = '';
  const login = { username: operatorLogin.user, password: operatorLogin.password };

  before(async () => {
    cli = await startCliHarness();
    closedUrl = `http://127.0.0.1:${await freePort()}`;
  });
  after(async () => {
    await cli?.close();
  });

  it('sf turns to the next broker when the first refuses connections', async () => {
    const client = new BrokerClient({ url: closedUrl, fallbackUrls: [cli.h.broker.url], ...login });
    const nodes = await client.get<unknown[]>('/sf/v1/nodes');
    assert.ok(Array.isArray(nodes));
  });

  it('with every broker down, the error names each one', async () => {
    const client = new BrokerClient({
      url: closedUrl,
      fallbackUrls: [closedUrl.replace('127.0.0.1', '127.0.0.2')],
      ...login,
    });
    const error = await client.get('/sf/v1/nodes').then(
      () => assert.fail('no broker answers'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof BrokerError);
    assert.match(
      error.message,
      /cannot reach the broker at http:\/\/127\.0\.0\.2:\d+: .*\(refused: http:\/\/127\.0\.0\.1:\d+\)/,
    );
  });

  it('an answer, even an error, is never sent to another broker', async () => {
    // The second broker would refuse this login (401): a retry there would show.
    const second = await cli.h.extraBroker({
      operators: [{ username: 'someone-else', password: 'another-password-0123', role: 'operator' }],
    });
    const client = new BrokerClient({ url: cli.h.broker.url, fallbackUrls: [second.url], ...login });
    const error = await client.get('/sf/v1/instances/no-such-instance').then(
      () => assert.fail('404 expected'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof BrokerError);
    assert.equal(error.status, 404);
  });

  it('GET /sf/v1/schedulers lists the live schedulers eldest first; the eldest leads', async () => {
    const { client, keys } = cli.h;
    const client2 = new BrokerClient({ url: cli.h.broker.url, ...login });
    const lease = client.lease(30, { autoKeepAlive: false });
    for (const name of ['scheduler-1', 'scheduler-2']) {
      await lease.put(keys.scheduler(name)).value(json({ name, mode: 'leader', startedAt: new Date().toISOString() }));
    }
    try {
      const views = await client2.get<SchedulerView[]>('/sf/v1/schedulers');
      assert.deepEqual(
        views.map((v) => [v.name, v.leader]),
        [
          ['scheduler-1', true],
          ['scheduler-2', false],
        ],
      );
      // The leader's lease is gone: the other one leads.
      await client.delete().key(keys.scheduler('scheduler-1'));
      const after = await client2.get<SchedulerView[]>('/sf/v1/schedulers');
      assert.deepEqual(
        after.map((v) => [v.name, v.leader]),
        [['scheduler-2', true]],
      );
    } finally {
      await lease.revoke();
    }
  });

  it('component names: two schedulers, two brokers (and three etcd members when asked) on new clusters, the old single names on older ones', () => {
    const base = {
      nodes: [{ name: 'node-1', address: '127.0.1.1' }],
      externalEtcd: [],
      etcdClientPort: 23790,
      etcdPeerPort: 23800,
      routerHost: '127.0.0.1',
    };
    assert.deepEqual(
      componentNames({
        ...base,
        routerHosts: ['127.0.0.1'],
        schedulers: 2,
        brokerPort: 8470,
        brokerPorts: [8470, 8471],
      }),
      ['etcd', 'agent-node-1', 'scheduler-1', 'scheduler-2', 'broker-1', 'broker-2', 'router-1'],
    );
    assert.deepEqual(componentNames({ ...base, brokerPort: 8470 }), [
      'etcd',
      'agent-node-1',
      'scheduler',
      'broker',
      'router',
    ]);
    assert.deepEqual(brokersOf({ brokerPort: 1, brokerPorts: [1, 2] }), [
      { name: 'broker-1', port: 1 },
      { name: 'broker-2', port: 2 },
    ]);
    assert.deepEqual(schedulersOf({}), ['scheduler']);
    const members = [
      { clientPort: 23790, peerPort: 23800 },
      { clientPort: 23791, peerPort: 23801 },
      { clientPort: 23792, peerPort: 23802 },
    ];
    assert.deepEqual(
      componentNames({ ...base, etcdMembers: members, brokerPort: 8470 }).filter((n) => n.startsWith('etcd')),
      ['etcd-1', 'etcd-2', 'etcd-3'],
    );
    assert.deepEqual(
      etcdMembersOf({ ...base, etcdMembers: members }).map((m) => [m.memberName, m.dataDir, m.clientPort]),
      [
        ['sf-1', 'etcd-1', 23790],
        ['sf-2', 'etcd-2', 23791],
        ['sf-3', 'etcd-3', 23792],
      ],
    );
    assert.deepEqual(etcdMembersOf({ ...base, externalEtcd: ['https://etcd.example:2379'] }), []);
    assert.deepEqual(
      etcdMembersOf({ ...base, etcdMembers: members }).map((m) => etcdClientUrl(m)),
      ['https://127.0.0.1:23790', 'https://127.0.0.1:23791', 'https://127.0.0.1:23792'],
      'members on this machine serve on loopback',
    );
  });

  it('etcd members placed in isolated nodes serve on their nodes’ addresses; a member on an unknown node is refused', () => {
    const nodes = [1, 2, 3].map((i) => ({ name: `node-${i}`, address: `10.213.9.${i}` }));
    const cluster = {
      nodes,
      externalEtcd: [],
      etcdClientPort: 23790,
      etcdPeerPort: 23800,
      etcdMembers: nodes.map((n, i) => ({ clientPort: 23790 + i, peerPort: 23800 + i, node: n.name })),
    };
    assert.deepEqual(
      etcdMembersOf(cluster).map((m) => [m.name, m.node, etcdClientUrl(m)]),
      [
        ['etcd-1', 'node-1', 'https://10.213.9.1:23790'],
        ['etcd-2', 'node-2', 'https://10.213.9.2:23791'],
        ['etcd-3', 'node-3', 'https://10.213.9.3:23792'],
      ],
    );
    assert.throws(
      () => etcdMembersOf({ ...cluster, nodes: nodes.slice(0, 2) }),
      /etcd-3 runs on node node-3, which the cluster does not have/,
    );
  });
});
