import { join } from 'node:path';
import { connectEtcd, etcdUsers } from '@service-foundry/core';
import { type ClusterFile, etcdClientUrl, etcdMembersOf } from './cluster-file.js';
import { ClusterPki } from './pki.js';

/** One member of the etcd `sf up` runs, as `sf status` shows it. */
export interface EtcdMemberHealth {
  name: string;
  endpoint: string;
  /** The isolated node it runs in; absent when it runs on this machine. */
  node?: string;
  /** It answered a status request within the deadline. */
  healthy: boolean;
  /** It is the raft leader (every write goes through it). */
  leader: boolean;
  /** Why it is not healthy. */
  error?: string;
}

const deadlineMs = 2000;

/**
 * Asks each member of the cluster's own etcd for its status (as etcd's `root` identity,
 * like `sf etcd snapshot`): whether it answers, and whether it is the raft leader. Empty
 * with an external etcd. Members are asked one by one, each on a connection of its own, so
 * one that hangs (stopped, not dead) costs its deadline and says so.
 */
export async function etcdMemberHealth(stateDir: string, cluster: Readonly<ClusterFile>): Promise<EtcdMemberHealth[]> {
  const tls = new ClusterPki(join(stateDir, 'pki')).client(etcdUsers.root);
  const health: EtcdMemberHealth[] = [];
  for (const member of etcdMembersOf(cluster)) {
    const endpoint = etcdClientUrl(member);
    const where = { name: member.name, endpoint, ...(member.node ? { node: member.node } : {}) };
    const client = connectEtcd({ endpoints: [endpoint], tls, requestTimeoutMs: deadlineMs });
    let timer: NodeJS.Timeout | undefined;
    try {
      const status = await Promise.race([
        client.maintenance.status(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms`)), deadlineMs);
        }),
      ]);
      health.push({ ...where, healthy: true, leader: status.leader === status.header.member_id });
    } catch (error) {
      health.push({ ...where, healthy: false, leader: false, error: (error as Error).message });
    } finally {
      clearTimeout(timer);
      client.close();
    }
  }
  return health;
}
