import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { uniqueId } from '@service-foundry/test-support';
import { removeStaleContainerLinks } from '../src/sim/stale-links.js';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);

/** The veth links of a namespace: name → the bridge it is on ('' when none). */
async function veths(netns: string): Promise<Record<string, string>> {
  const { stdout } = await ip('-n', netns, '-j', 'link', 'show', 'type', 'veth');
  const links = JSON.parse(stdout || '[]') as Array<{ ifname: string; master?: string }>;
  return Object.fromEntries(links.map((l) => [l.ifname, l.master ?? '']));
}

/**
 * A node's namespace as a power loss leaves it: the engine's bridge with the host end of a
 * dead container's veth still on it (the container's namespace kept alive here by its
 * /run/netns name, as the kernel's slow teardown keeps it), and the node's own uplink.
 */
describe('a node that boots after a power loss: stale container links', () => {
  const id = uniqueId('sfsl').slice(-10);
  const node = `${id}-node`;
  const container = `${id}-ctr`;
  const other = `${id}-other`;

  before(async () => {
    for (const ns of [node, container, other]) await ip('netns', 'add', ns);
    await ip('-n', node, 'link', 'add', 'docker0', 'type', 'bridge');
    // The uplink: a veth on no bridge in the node's namespace.
    await ip('-n', node, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', other);
    await ip('-n', node, 'link', 'add', 'vethdead1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container);
    await ip('-n', node, 'link', 'set', 'vethdead1', 'master', 'docker0');
    await ip('-n', container, 'addr', 'add', '10.214.250.2/26', 'dev', 'eth0');
  });
  after(async () => {
    for (const ns of [node, container, other]) await ip('netns', 'del', ns).catch(() => undefined);
  });

  it('deletes the veths on a bridge, both ends; the uplink stays', async () => {
    assert.deepEqual(await veths(node), { eth0: '', vethdead1: 'docker0' });
    assert.deepEqual(await removeStaleContainerLinks(`/run/netns/${node}`), ['vethdead1']);
    assert.deepEqual(await veths(node), { eth0: '' });
    // The dead container's namespace no longer holds the address a new container gets.
    assert.deepEqual(await veths(container), {});
    assert.deepEqual(await removeStaleContainerLinks(`/run/netns/${node}`), [], 'nothing left the second time');
  });
});
