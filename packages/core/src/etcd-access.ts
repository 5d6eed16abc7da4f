import type { Keyspace } from './keyspace.js';

/**
 * Who may touch which part of the keyspace: one etcd role per component kind, plus one
 * per node for the keys only that node's agent may write. This table is the one source of
 * the roles `sf up` creates (etcd-rbac.ts) and of the matrix in docs/keyspace.md.
 *
 * `r` read (get, watch, compare in a transaction), `w` write (put, delete), `rw` both.
 * etcd permissions are key ranges; a prefix grant covers every key under it.
 */
export type Access = 'r' | 'w' | 'rw';

export type ComponentKind = 'broker' | 'scheduler' | 'router' | 'agent';

export const componentKinds: readonly ComponentKind[] = ['broker', 'scheduler', 'router', 'agent'];

export interface KeyFamilyAccess {
  /** The prefix as docs/keyspace.md names it (below the keyspace root). */
  family: string;
  prefix: (keys: Keyspace) => string;
  access: Partial<Record<ComponentKind, Access>>;
}

/**
 * Why each grant exists is in docs/keyspace.md. Secrets (`secrets/`, `bindings/`) are
 * sealed with the secrets key (SecretBox) besides: the scheduler may delete them when an
 * instance goes, but never read them.
 */
export const keyFamilies: readonly KeyFamilyAccess[] = [
  { family: 'nodes/', prefix: (k) => k.nodes(), access: { broker: 'r', scheduler: 'rw', agent: 'r' } },
  { family: 'allocations/', prefix: (k) => k.allocations(), access: { broker: 'r', scheduler: 'rw' } },
  { family: 'locks/', prefix: (k) => k.locks(), access: { scheduler: 'rw' } },
  { family: 'schedulers/', prefix: (k) => k.schedulers(), access: { broker: 'r', scheduler: 'rw' } },
  { family: 'node-controls/', prefix: (k) => k.nodeControls(), access: { broker: 'rw', scheduler: 'rw' } },
  { family: 'fence/', prefix: (k) => k.fences(), access: { broker: 'rw', scheduler: 'rw', agent: 'r' } },
  { family: 'fence-devices/', prefix: (k) => k.allFenceDevices(), access: { broker: 'rw', scheduler: 'r' } },
  { family: 'fence-history/', prefix: (k) => k.fenceHistory(), access: { broker: 'rw', scheduler: 'rw' } },
  { family: 'fence-checks/', prefix: (k) => k.fenceChecks(), access: { broker: 'r', scheduler: 'rw' } },
  { family: 'instances/', prefix: (k) => k.instances(), access: { broker: 'rw', scheduler: 'rw' } },
  { family: 'secrets/', prefix: (k) => k.secrets(), access: { broker: 'rw', scheduler: 'w', agent: 'r' } },
  { family: 'router-ports/', prefix: (k) => k.routerPorts(), access: { broker: 'rw', scheduler: 'rw' } },
  { family: 'tombstones/', prefix: (k) => k.tombstones(), access: { broker: 'r', scheduler: 'w' } },
  { family: 'scheduling/', prefix: (k) => k.schedulingStatuses(), access: { broker: 'r', scheduler: 'rw' } },
  { family: 'placements/', prefix: (k) => k.placements(), access: { broker: 'r', scheduler: 'rw', agent: 'r' } },
  { family: 'assignments/', prefix: (k) => k.assignments(), access: { broker: 'r', scheduler: 'rw' } },
  { family: 'status/', prefix: (k) => k.statuses(), access: { broker: 'r', scheduler: 'rw', agent: 'rw' } },
  { family: 'primary/', prefix: (k) => k.primaries(), access: { broker: 'r', scheduler: 'rw', agent: 'r' } },
  { family: 'routes/', prefix: (k) => k.routes(), access: { broker: 'r', scheduler: 'rw', router: 'r' } },
  { family: 'bindings/', prefix: (k) => k.bindings(), access: { broker: 'rw', scheduler: 'w' } },
  { family: 'transfers/', prefix: (k) => k.transfers(), access: { broker: 'r', scheduler: 'rw', agent: 'rw' } },
  { family: 'relocations/', prefix: (k) => k.relocations(), access: { broker: 'rw', scheduler: 'rw' } },
  { family: 'switchovers/', prefix: (k) => k.switchovers(), access: { broker: 'rw', scheduler: 'rw', agent: 'r' } },
  { family: 'backups/', prefix: (k) => k.backups(), access: { broker: 'rw', scheduler: 'rw', agent: 'rw' } },
  { family: 'events/', prefix: (k) => k.events(), access: { broker: 'rw', scheduler: 'rw', agent: 'rw' } },
];

/** What only one node's agent may write: its node record and its assignments. */
export function nodeOwnedKeys(keys: Keyspace, node: string): Array<{ key: string; prefix: boolean; access: Access }> {
  return [
    { key: keys.node(node), prefix: false, access: 'rw' },
    { key: keys.nodeAssignments(node), prefix: true, access: 'rw' },
  ];
}

/** etcd user names (the CN of each component's client certificate). */
export const etcdUsers = {
  root: 'root',
  broker: 'sf-broker',
  scheduler: 'sf-scheduler',
  router: 'sf-router',
  agent: (node: string) => `sf-agent.${node}`,
} as const;

/** etcd role names. */
export const etcdRoles = {
  kind: (kind: ComponentKind) => `sf-${kind}`,
  node: (node: string) => `sf-node.${node}`,
} as const;
