import { isAbsolute, join, resolve } from 'node:path';
import { etcdPeerUrl, etcdUsers } from '@service-foundry/core';
import { etcdClientUrl, etcdMembersOf, readClusterFile } from '../cluster/cluster-file.js';
import { componentStatus } from '../cluster/components.js';
import { restoreSnapshot, saveSnapshot } from '../cluster/etcd-snapshot.js';
import { ClusterPki } from '../cluster/pki.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { printJson, say } from '../output.js';
import { stateDir } from '../target.js';

async function localEtcd() {
  const dir = stateDir();
  const cluster = await readClusterFile(dir);
  if (!cluster) throw new UsageError(`no cluster in ${dir}`);
  if (cluster.externalEtcd.length) {
    throw new UsageError('this cluster uses an external etcd: snapshot and restore it with its own tools');
  }
  return { dir, cluster };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * `sf etcd snapshot FILE` and `sf etcd restore FILE` for the etcd `sf up` runs: a point-in-
 * time copy of the whole keyspace (etcdctl, as etcd's `root` identity), and putting one
 * back while the platform is down (docs/architecture.md "etcd backups").
 */
export const etcd: Command = {
  name: 'etcd',
  summary: "snapshot the platform's etcd to FILE, or restore FILE into it while the platform is down",
  args: ['snapshot|restore', 'FILE'],
  options: { json: { type: 'boolean' } },
  async run([verb, file], options) {
    if (verb !== 'snapshot' && verb !== 'restore') throw new UsageError('usage: sf etcd snapshot|restore FILE');
    const path = isAbsolute(file as string) ? (file as string) : resolve(file as string);
    const { dir, cluster } = await localEtcd();
    const members = etcdMembersOf(cluster);
    if (verb === 'snapshot') {
      // Any running member holds the whole keyspace (what the majority committed).
      let from: (typeof members)[number] | undefined;
      for (const member of members) if ((await componentStatus(dir, member.name)).pid !== undefined) from ??= member;
      if (!from) throw new UsageError('etcd is not running: `sf up` first');
      const pki = new ClusterPki(join(dir, 'pki'));
      const saved = await saveSnapshot(etcdClientUrl(from), pki.client(etcdUsers.root), path);
      if (options.json) return printJson({ ...saved, member: from.name });
      say(
        `Snapshot of ${from.name} at revision ${saved.revision} (${saved.totalKey} keys, ${mib(saved.totalSize)}) written to ${path} (mode 0600, sha256 ${saved.sha256}).`,
      );
      say('It holds the whole keyspace (secrets sealed, the sealing key is not in it): keep it as private as pki/.');
      return;
    }
    for (const member of members) {
      const running = await componentStatus(dir, member.name);
      if (running.pid !== undefined || running.supervisor !== undefined) {
        throw new UsageError('etcd is running: stop the platform with `sf down` first (a restore replaces its data)');
      }
    }
    if (members.length > 1) {
      throw new UsageError(
        `restoring a ${members.length}-member etcd is not built: restore each member with \`etcdutl snapshot restore\` (docs/architecture.md, etcd backups)`,
      );
    }
    const restored = await restoreSnapshot(path, join(dir, 'etcd'), etcdPeerUrl(cluster.etcdPeerPort, true));
    if (options.json) return printJson(restored);
    say(`Restored revision ${restored.revision} (${restored.totalKey} keys) from ${path} into ${join(dir, 'etcd')}.`);
    if (restored.keptAs) say(`The previous data is kept in ${restored.keptAs} (rename it back to undo).`);
    say('`sf up` starts the platform on it.');
  },
};
