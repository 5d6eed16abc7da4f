import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { ClusterState } from '../src/cluster-state.js';
import { lostTogetherWindowMs } from '../src/controller/failover.js';
import { registerNode } from './helpers.js';

/**
 * ClusterState counts nodes whose leases vanished together, from the watch of real etcd:
 * what the controller latches when a primary's node is lost (controller/failover.ts).
 */
describe('cluster state: nodes lost together', () => {
  let f: TestEtcd;
  let state: ClusterState;
  const capacity = { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 };

  before(async () => {
    f = await startTestEtcd();
    state = new ClusterState(f.client, f.keys, silentLogger('lost-together'));
    await state.start();
  });
  after(async () => {
    await state?.close();
    await f?.stop();
  });

  it('counts leases revoked at once, not a node lost alone, and forgets a node once it is back', async () => {
    const leases = new Map<string, string>();
    for (const name of ['a', 'b', 'c']) leases.set(name, await registerNode(f, name, capacity));
    await waitFor(() => state.nodes.items.size === 3, { description: 'three nodes mirrored', timeoutMs: 10_000 });
    assert.deepEqual(state.lostTogether('a', lostTogetherWindowMs), { together: 0, alive: 3 }, 'not lost');

    await f.client.leaseClient.leaseRevoke({ ID: leases.get('c') as string });
    await waitFor(() => state.nodes.items.size === 2, { description: 'c gone', timeoutMs: 10_000 });
    assert.deepEqual(state.lostTogether('c', lostTogetherWindowMs), { together: 1, alive: 2 }, 'alone');

    // What etcd does when it comes back from an outage: every lease expires at once.
    await Promise.all(['a', 'b'].map((name) => f.client.leaseClient.leaseRevoke({ ID: leases.get(name) as string })));
    await waitFor(() => state.nodes.items.size === 0, { description: 'a and b gone', timeoutMs: 10_000 });
    assert.equal(state.lostTogether('a', lostTogetherWindowMs).together >= 2, true, 'a and b (and c, if close enough)');
    assert.equal(state.lostTogether('a', lostTogetherWindowMs).alive, 0);

    await registerNode(f, 'b', capacity);
    await waitFor(() => state.nodes.items.size === 1, { description: 'b back', timeoutMs: 10_000 });
    assert.equal(state.lostTogether('b', lostTogetherWindowMs).together, 0, 'b is back: not lost');
    assert.equal(state.lostTogether('a', lostTogetherWindowMs).alive, 1);
  });
});
