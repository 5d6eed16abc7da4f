import { randomBytes } from 'node:crypto';
import { type Etcd3, type IPermissionRequest, Range } from 'etcd3';
import {
  type Access,
  type ComponentKind,
  componentKinds,
  etcdRoles,
  etcdUsers,
  keyFamilies,
  nodeOwnedKeys,
} from './etcd-access.js';
import type { Keyspace } from './keyspace.js';

/** One grant as etcd stores it: a key range and a permission. */
export interface EtcdGrant {
  start: string;
  /** Exclusive end of the range; `undefined` for a single key. */
  end: string | undefined;
  permission: 'Read' | 'Write' | 'Readwrite';
}

const permissionOf: Record<Access, EtcdGrant['permission']> = { r: 'Read', w: 'Write', rw: 'Readwrite' };

function prefixGrant(prefix: string, access: Access): EtcdGrant {
  return { start: prefix, end: Range.prefix(prefix).end.toString(), permission: permissionOf[access] };
}

/** The grants of a component kind's role, from the access table. */
export function kindGrants(keys: Keyspace, kind: ComponentKind): EtcdGrant[] {
  return keyFamilies.flatMap((f) => {
    const access = f.access[kind];
    return access ? [prefixGrant(f.prefix(keys), access)] : [];
  });
}

/** The grants of one node's own role: its node record and its assignments. */
export function nodeGrants(keys: Keyspace, node: string): EtcdGrant[] {
  return nodeOwnedKeys(keys, node).map((k) =>
    k.prefix ? prefixGrant(k.key, k.access) : { start: k.key, end: undefined, permission: permissionOf[k.access] },
  );
}

const grantId = (g: EtcdGrant) => `${g.permission} ${g.start} ${g.end ?? ''}`;

function toRequest(g: EtcdGrant): IPermissionRequest {
  return g.end === undefined
    ? { permission: g.permission, key: g.start }
    : { permission: g.permission, range: new Range(g.start, g.end) };
}

async function exists(list: Promise<Array<{ name: string }>>, name: string): Promise<boolean> {
  return (await list).some((item) => item.name === name);
}

/** Makes a role hold exactly `grants`: missing ones granted, others revoked. */
async function syncRole(client: Etcd3, name: string, grants: readonly EtcdGrant[]): Promise<void> {
  const role = client.role(name);
  if (!(await exists(client.getRoles(), name))) await role.create();
  const wanted = new Map(grants.map((g) => [grantId(g), g]));
  const current = (await role.permissions()).map((p): EtcdGrant => {
    const end = p.range.end.toString();
    // etcd answers a single-key permission with an empty range end.
    return { start: p.range.start.toString(), end: end.length ? end : undefined, permission: p.permission };
  });
  const stale = current.filter((g) => !wanted.has(grantId(g)));
  for (const g of current) wanted.delete(grantId(g));
  if (stale.length) await role.revoke(stale.map(toRequest));
  if (wanted.size) await role.grant([...wanted.values()].map(toRequest));
}

/**
 * A user authenticated by its client certificate's CN. etcd wants a password too; it
 * gets a random one nobody keeps, so the certificate is the only way in.
 */
async function syncUser(client: Etcd3, name: string, roles: readonly string[]): Promise<void> {
  const user = client.user(name);
  if (!(await exists(client.getUsers(), name))) await user.create(randomBytes(32).toString('base64url'));
  const has = new Set((await user.roles()).map((r) => r.name));
  for (const role of roles) if (!has.has(role)) await user.addRole(role);
}

export interface EtcdAccessPlan {
  keys: Keyspace;
  /** Nodes whose agents get a user of their own. */
  nodes: readonly string[];
}

/**
 * Creates (or brings up to date) one role per component kind, one per node and the users
 * behind the components' certificates, then turns authentication on. Must run with the
 * `root` identity; safe to run again (a second `sf up`, a node added).
 */
export async function applyEtcdAccess(client: Etcd3, plan: EtcdAccessPlan): Promise<void> {
  const { keys } = plan;
  for (const kind of componentKinds) await syncRole(client, etcdRoles.kind(kind), kindGrants(keys, kind));
  for (const node of plan.nodes) await syncRole(client, etcdRoles.node(node), nodeGrants(keys, node));

  if (!(await exists(client.getRoles(), 'root'))) await client.role('root').create();
  await syncUser(client, etcdUsers.root, ['root']);
  await syncUser(client, etcdUsers.broker, [etcdRoles.kind('broker')]);
  await syncUser(client, etcdUsers.scheduler, [etcdRoles.kind('scheduler')]);
  await syncUser(client, etcdUsers.router, [etcdRoles.kind('router')]);
  for (const node of plan.nodes) {
    await syncUser(client, etcdUsers.agent(node), [etcdRoles.kind('agent'), etcdRoles.node(node)]);
  }
  // Enabling twice is harmless; etcd answers the second call without change.
  await client.auth.authEnable();
}
