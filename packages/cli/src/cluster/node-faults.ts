import { setTimeout as delay } from 'node:timers/promises';
import { NodeRuntimeError } from '../errors.js';
import { hostCommand } from './host-command.js';

/**
 * Partitions of one isolated node, as iptables rules inside its own namespace. They live
 * in the `mangle` table, which the node's dockerd never rewrites, and match only traffic
 * crossing the node's `eth0`: on the way in (PREROUTING) and on the way out
 * (POSTROUTING, which also sees what the node's containers send after routing), so the
 * agent, dockerd's port proxies and the containers are all cut alike.
 *
 * | fault  | chain       | dropped                                                        |
 * | ------ | ----------- | -------------------------------------------------------------- |
 * | etcd   | `SF-ETCD`   | TCP with every etcd member: its client (and peer) ports at its |
 * |        |             | address, and this node's own member's ports for others         |
 * | peers  | `SF-PEERS`  | everything to/from the segment except this machine's address   |
 * |        |             | and the etcd traffic above                                     |
 *
 * With a member inside the node, an etcd partition leaves it a minority of one: the node's
 * agent still reaches it (over the node's loopback), but it has no leader and refuses.
 * Packets are dropped, not refused: a partition is silence, as on a real network.
 */
export type PartitionKind = 'etcd' | 'peers';

const chains: Record<PartitionKind, string> = { etcd: 'SF-ETCD', peers: 'SF-PEERS' };
const hooks = [
  ['PREROUTING', '-i'],
  ['POSTROUTING', '-o'],
] as const;

function iptables(netns: string, args: string[]): Promise<string> {
  return hostCommand('nsenter', [`--net=/run/netns/${netns}`, '--', 'iptables', '-w', '-t', 'mangle', ...args]);
}

async function chainRules(netns: string): Promise<string[]> {
  return (await iptables(netns, ['-S'])).split('\n');
}

/** An etcd member as a partition sees it: its address and the ports to cut there. */
export interface EtcdEndpoint {
  address: string;
  /** Its client port, and its peer port when it runs inside a node. */
  ports: readonly number[];
}

/** What a partition of one node is drawn around. */
export interface PartitionScope {
  /** This machine's address on the segment. */
  hostAddress: string;
  /** The node's own address. */
  self: string;
  etcd: readonly EtcdEndpoint[];
}

/** Matches of the node's etcd traffic, seen at its eth0 both ways. */
function etcdMatches({ self, etcd }: PartitionScope): string[][] {
  return etcd.flatMap(({ address, ports }) => {
    const list = ports.join(',');
    const tcp = ['-p', 'tcp', '-m', 'multiport'];
    // The node's own member is reached by others at its ports; another is reached at its.
    return address === self
      ? [
          ['-d', self, ...tcp, '--dports', list],
          ['-s', self, ...tcp, '--sports', list],
        ]
      : [
          ['-s', address, ...tcp, '--sports', list],
          ['-d', address, ...tcp, '--dports', list],
        ];
  });
}

function rulesFor(kind: PartitionKind, scope: PartitionScope): string[][] {
  if (kind === 'peers') {
    return [
      ['-s', scope.hostAddress, '-j', 'RETURN'],
      ['-d', scope.hostAddress, '-j', 'RETURN'],
      ...etcdMatches(scope).map((match) => [...match, '-j', 'RETURN']),
      ['-j', 'DROP'],
    ];
  }
  return etcdMatches(scope).map((match) => [...match, '-j', 'DROP']);
}

/** Cuts the node off (idempotent: a partition in place is rebuilt, not doubled). */
export async function partition(netns: string, kind: PartitionKind, scope: PartitionScope): Promise<void> {
  const chain = chains[kind];
  if (kind === 'etcd' && scope.etcd.length === 0) throw new NodeRuntimeError('no etcd member to cut');
  const existing = await chainRules(netns);
  if (!existing.includes(`-N ${chain}`)) await iptables(netns, ['-N', chain]);
  await iptables(netns, ['-F', chain]);
  for (const rule of rulesFor(kind, scope)) await iptables(netns, ['-A', chain, ...rule]);
  for (const [hook, dir] of hooks) {
    if (!existing.includes(`-A ${hook} ${dir} eth0 -j ${chain}`)) {
      await iptables(netns, ['-I', hook, dir, 'eth0', '-j', chain]);
    }
  }
}

/** Tries of a heal; each reads the rules afresh, so one a failed try half did is finished. */
const healAttempts = 3;
const healRetryMs = 250;

/**
 * Removes a partition; healing one that is not in place does nothing. A failed iptables
 * call (CI saw `-D` exit non-zero once, with nothing on stderr, while the node's dockerd
 * was busy) is tried again from a fresh read of the rules: a heal left half-done would
 * keep the node cut off.
 */
export async function heal(netns: string, kind: PartitionKind): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await removeChain(netns, chains[kind]);
      return;
    } catch (error) {
      if (attempt >= healAttempts) throw error;
      await delay(healRetryMs);
    }
  }
}

async function removeChain(netns: string, chain: string): Promise<void> {
  const existing = await chainRules(netns);
  for (const [hook, dir] of hooks) {
    if (existing.includes(`-A ${hook} ${dir} eth0 -j ${chain}`)) {
      await iptables(netns, ['-D', hook, dir, 'eth0', '-j', chain]);
    }
  }
  if (existing.includes(`-N ${chain}`)) {
    await iptables(netns, ['-F', chain]);
    await iptables(netns, ['-X', chain]);
  }
}

/** The partitions in place on a node. */
export async function partitions(netns: string): Promise<PartitionKind[]> {
  const existing = await chainRules(netns);
  return (Object.keys(chains) as PartitionKind[]).filter((kind) =>
    existing.includes(`-A PREROUTING -i eth0 -j ${chains[kind]}`),
  );
}
