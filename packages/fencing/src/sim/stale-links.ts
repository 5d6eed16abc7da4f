import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Deletes the veths left in a node's network namespace by the containers of before a power
 * loss (their host ends, on the engine's bridge); returns their names.
 *
 * A killed dockerd never deletes them, and the kernel tears down a dead container's
 * namespace in the background, in `sf chaos` up to minutes later. Until then that
 * namespace still holds the container's address and MAC (Docker derives the MAC from the
 * address), and the engine that boots again gives a new container the same address: both
 * answer ARP on the bridge, and a connection that reaches the dead one is refused (a
 * router saw ECONNREFUSED from a primary that was up, for minutes). A host that boots has
 * no such links; deleting one end of a veth deletes both.
 */
export async function removeStaleContainerLinks(netnsPath: string): Promise<string[]> {
  const ip = (args: string[]) => run('nsenter', [`--net=${netnsPath}`, '--', 'ip', ...args], { timeout: 30_000 });
  const { stdout } = await ip(['-j', 'link', 'show', 'type', 'veth']);
  const links = JSON.parse(stdout || '[]') as Array<{ ifname?: string; master?: string }>;
  // Only those on a bridge: the node's own uplink (eth0) is a veth too, on no bridge here.
  const stale = links.filter((l) => l.master !== undefined && l.ifname).map((l) => l.ifname as string);
  for (const name of stale) {
    // Gone meanwhile with its namespace: nothing left to delete.
    await ip(['link', 'del', name]).catch(() => undefined);
  }
  return stale;
}
