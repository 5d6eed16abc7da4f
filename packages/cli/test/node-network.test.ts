import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, type TempDir, uniqueId } from '@service-foundry/test-support';
import { releaseBlock, reserveBlock } from '../src/cluster/node-addresses.js';
import { ensureNetwork, type NetworkLayout, networkLeftovers, removeNetwork } from '../src/cluster/node-network.js';
import { NodeRuntime } from '../src/cluster/node-runtime.js';

/**
 * The segment of isolated nodes (namespaces, veths, the switch's bridge) as `sf up` makes
 * it and `sf down` removes it: with real `ip` on this machine.
 */
describe('isolated nodes’ network: made and removed', () => {
  let dir: TempDir;
  let block: number;
  let layout: NetworkLayout;

  before(async () => {
    dir = await makeTempDir('sf-node-network');
    const clusterId = uniqueId('sfnet');
    block = await reserveBlock(dir.path, `${clusterId}-`);
    // The layout `sf up` gives these nodes; nothing of them is started.
    layout = new NodeRuntime({
      clusterId,
      stateDir: dir.path,
      block,
      nodes: [{ name: 'node-1' }, { name: 'node-2' }],
      etcd: [],
    }).layout;
  });
  after(async () => {
    await removeNetwork(layout);
    await releaseBlock(block, dir.path);
    await dir.remove();
  });

  it('ensureNetwork twice is one network; two removals at once both finish and leave nothing', async () => {
    await ensureNetwork(layout);
    await ensureNetwork(layout);
    assert.deepEqual(await networkLeftovers(layout), [
      `link ${layout.hostLink}`,
      ...layout.nodes.map((n) => `netns ${n.netns}`),
      `netns ${layout.switchNetns}`,
    ]);
    // Two `sf down`s (or one racing a namespace's own teardown) find the same link and
    // namespaces present; whichever removes one second must not fail on its absence.
    const results = await Promise.allSettled([removeNetwork(layout), removeNetwork(layout), removeNetwork(layout)]);
    assert.deepEqual(
      results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')),
      ['ok', 'ok', 'ok'],
    );
    assert.deepEqual(await networkLeftovers(layout), []);
  });
});
