/** One etcd member as the cluster API lists it: the hosts of its peer and client URLs. */
export interface EtcdMemberHosts {
  name: string;
  hosts: readonly string[];
}

export interface QuorumInput {
  members: readonly EtcdMemberHosts[];
  /** Every node known, registered or not, with its address. */
  nodeAddresses: ReadonlyMap<string, string>;
  /** Nodes whose agents hold their lease and answer (not silent, not fenced). */
  upNodes: ReadonlySet<string>;
  /** The node about to be fenced. */
  fencing: string;
}

/** The host part of an etcd URL (`https://10.0.0.1:2379` → `10.0.0.1`), or undefined. */
export function urlHost(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

/**
 * Whether etcd keeps a quorum once `fencing` is powered off, when etcd members run on the
 * nodes themselves (docs/deploy.md's three-host layout). A member counts as alive when it
 * runs on no node, or on a node that is up; the node being fenced counts as down. Powering
 * off the node of the last member a quorum needs would stop etcd, and with it every
 * fence record, unfence and promotion, until an operator steps in: the failover waits
 * instead, and says why.
 *
 * | member runs on         | counted      |
 * |------------------------|--------------|
 * | no node (its own host) | alive        |
 * | a node that is up      | alive        |
 * | the node to fence      | down         |
 * | a node down or fenced  | down         |
 */
export function quorumAfterFencing(input: QuorumInput): { ok: true } | { ok: false; reason: string } {
  const { members, nodeAddresses, upNodes, fencing } = input;
  if (members.length === 0) return { ok: true };
  const nodeOfHost = new Map<string, string>();
  for (const [node, address] of nodeAddresses) nodeOfHost.set(address, node);
  const down: string[] = [];
  let alive = 0;
  for (const member of members) {
    const node = member.hosts.map((host) => nodeOfHost.get(host)).find((n) => n !== undefined);
    if (node === undefined || (node !== fencing && upNodes.has(node))) alive++;
    else down.push(`${member.name} (on ${node})`);
  }
  const quorum = Math.floor(members.length / 2) + 1;
  if (alive >= quorum) return { ok: true };
  return {
    ok: false,
    reason:
      `fencing node ${fencing} would leave etcd ${alive} of ${members.length} members, below its quorum of ${quorum} ` +
      `(down then: ${down.join(', ')}); waiting for a node to come back`,
  };
}
