import { readdir } from 'node:fs/promises';
import { hostCommand, succeeds } from './host-command.js';
import type { NodeAddressing } from './node-addresses.js';

/**
 * The wiring of a cluster's isolated nodes, as one L2 segment:
 *
 *   host namespace ── veth `sfseg<K>` (10.213.K.254) ─┐
 *                                                      ├─ bridge `br0` in the switch namespace
 *   node namespace ── veth `eth0` (10.213.K.i) ── `n<i>` ┘
 *
 * The bridge lives in a namespace of its own: in the host namespace, bridge netfilter and
 * Docker's FORWARD DROP would drop the traffic between nodes. Names inside a namespace are
 * local to it (every node has its `eth0`); the only name in the host namespace is the
 * host link, unique per block.
 */
export interface NetworkLayout {
  addressing: NodeAddressing;
  switchNetns: string;
  /** Interface on this machine's side of the segment. */
  hostLink: string;
  nodes: ReadonlyArray<{ name: string; index: number; netns: string; address: string }>;
}

/** The switch-side end of node `index`'s cable: pulling it is a link failure. */
export function switchPort(index: number): string {
  return `n${index}`;
}

async function netnsExists(name: string): Promise<boolean> {
  return (await readdir('/run/netns').catch(() => [] as string[])).includes(name);
}

async function ensureNetns(name: string): Promise<void> {
  if (!(await netnsExists(name))) await hostCommand('ip', ['netns', 'add', name]);
  await hostCommand('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

async function hasAddress(netns: string | undefined, dev: string, address: string): Promise<boolean> {
  const args = [...(netns ? ['-n', netns] : []), '-4', '-o', 'addr', 'show', 'dev', dev];
  return (await hostCommand('ip', args)).includes(` ${address}/`);
}

/** Creates whatever of the layout is missing; safe to run on a network that is up. */
export async function ensureNetwork(layout: NetworkLayout): Promise<void> {
  const { addressing, switchNetns, hostLink } = layout;
  const sw = ['-n', switchNetns];
  await ensureNetns(switchNetns);
  if (!(await succeeds('ip', [...sw, 'link', 'show', 'br0']))) {
    await hostCommand('ip', [...sw, 'link', 'add', 'br0', 'type', 'bridge']);
  }
  await hostCommand('ip', [...sw, 'link', 'set', 'br0', 'up']);
  if (!(await succeeds('ip', ['link', 'show', hostLink]))) {
    await hostCommand('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'host', 'netns', switchNetns]);
  }
  await hostCommand('ip', [...sw, 'link', 'set', 'host', 'master', 'br0', 'up']);
  if (!(await hasAddress(undefined, hostLink, addressing.hostAddress))) {
    await hostCommand('ip', ['addr', 'add', `${addressing.hostAddress}/${addressing.prefixLength}`, 'dev', hostLink]);
  }
  await hostCommand('ip', ['link', 'set', hostLink, 'up']);
  for (const node of layout.nodes) {
    await ensureNetns(node.netns);
    const port = switchPort(node.index);
    if (!(await succeeds('ip', [...sw, 'link', 'show', port]))) {
      await hostCommand('ip', [
        ...sw,
        'link',
        'add',
        port,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        node.netns,
      ]);
    }
    await hostCommand('ip', [...sw, 'link', 'set', port, 'master', 'br0', 'up']);
    if (!(await hasAddress(node.netns, 'eth0', node.address))) {
      await hostCommand('ip', [
        '-n',
        node.netns,
        'addr',
        'add',
        `${node.address}/${addressing.prefixLength}`,
        'dev',
        'eth0',
      ]);
    }
    await hostCommand('ip', ['-n', node.netns, 'link', 'set', 'eth0', 'up']);
  }
}

/**
 * Removes the host link and every namespace of the layout. A namespace still holding
 * processes would live on unseen, so callers stop the nodes first.
 */
export async function removeNetwork(layout: NetworkLayout): Promise<void> {
  await removeIfPresent(
    () => succeeds('ip', ['link', 'show', layout.hostLink]),
    () => hostCommand('ip', ['link', 'del', layout.hostLink]),
  );
  for (const name of [...layout.nodes.map((n) => n.netns), layout.switchNetns]) {
    await removeIfPresent(
      () => netnsExists(name),
      () => hostCommand('ip', ['netns', 'del', name]),
    );
  }
}

/**
 * Removal that another removal may overtake: a veth goes with its peer's namespace, and
 * two `sf down`s may run at once. A failed removal of what is gone by then is done; a
 * failed removal of what is still there is the error.
 */
async function removeIfPresent(present: () => Promise<boolean>, remove: () => Promise<unknown>): Promise<void> {
  if (!(await present())) return;
  try {
    await remove();
  } catch (error) {
    if (await present()) throw error;
  }
}

/** What is left of a layout: for `sf down` to report and for tests to assert nothing is. */
export async function networkLeftovers(layout: NetworkLayout): Promise<string[]> {
  const left: string[] = [];
  if (await succeeds('ip', ['link', 'show', layout.hostLink])) left.push(`link ${layout.hostLink}`);
  for (const name of [...layout.nodes.map((n) => n.netns), layout.switchNetns]) {
    if (await netnsExists(name)) left.push(`netns ${name}`);
  }
  return left;
}

/** Pulls (`down`) or plugs (`up`) node `index`'s cable at the switch. */
export async function setLink(layout: NetworkLayout, index: number, state: 'up' | 'down'): Promise<void> {
  await hostCommand('ip', ['-n', layout.switchNetns, 'link', 'set', switchPort(index), state]);
}

export async function linkState(layout: NetworkLayout, index: number): Promise<'up' | 'down' | 'absent'> {
  if (!(await netnsExists(layout.switchNetns))) return 'absent';
  try {
    const text = await hostCommand('ip', ['-n', layout.switchNetns, '-o', 'link', 'show', switchPort(index)]);
    // Admin state: the flags between < > hold UP when the port is enabled.
    return /<[^>]*\bUP\b[^>]*>/.test(text) ? 'up' : 'down';
  } catch {
    return 'absent';
  }
}
