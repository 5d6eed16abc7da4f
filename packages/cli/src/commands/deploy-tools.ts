import { isAbsolute, resolve } from 'node:path';
import { applyEtcdAccess, connectEtcd, Keyspace } from '@service-foundry/core';
import { ClusterPki, type PkiNode } from '../cluster/pki.js';
import type { Command, OptionValues } from '../command.js';
import { UsageError } from '../errors.js';
import { say } from '../output.js';

/** Node names are etcd key segments and certificate names: the same rule as the agent's. */
const nodeName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function list(options: OptionValues, name: string): string[] {
  const raw = (options as Record<string, unknown>)[name];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}

function parseNode(text: string): PkiNode {
  const [name, address, extra] = text.split('=');
  if (!name || !address || extra !== undefined || !nodeName.test(name)) {
    throw new UsageError(`--node must look like NAME=ADDRESS (e.g. node-1=10.0.0.11), got ${JSON.stringify(text)}`);
  }
  return { name, address };
}

/**
 * `sf certs DIR --node NAME=ADDRESS … [--etcd-host H …] [--router-host H …]`: the cluster CA
 * and every certificate of a cluster on real hosts, made by the same code (and openssl
 * parameters) as `sf up` makes them on one machine. Run again, it adds what is missing
 * and remakes a certificate whose names changed; the CA is kept.
 */
export const certs: Command = {
  name: 'certs',
  summary: 'make the cluster CA and the certificates of a multi-host cluster (docs/deploy.md)',
  args: ['DIR'],
  options: {
    node: { type: 'string', multiple: true },
    'etcd-host': { type: 'string', multiple: true },
    'router-host': { type: 'string', multiple: true },
  },
  async run([dir], options) {
    const nodes = list(options, 'node').map(parseNode);
    if (nodes.length === 0) throw new UsageError('give each node as --node NAME=ADDRESS');
    const folder = isAbsolute(dir as string) ? (dir as string) : resolve(dir as string);
    const pki = new ClusterPki(folder);
    await pki.ensure(nodes, { etcdHosts: list(options, 'etcd-host'), routerHosts: list(options, 'router-host') });
    say(
      `CA, etcd server, component and node certificates in ${folder} (keys 0600). Which host gets which file: docs/deploy.md.`,
    );
  },
};

/**
 * `sf etcd-roles --etcd URLS --etcd-ca F --etcd-cert F --etcd-key F --node NAME …`: the etcd
 * users and roles of docs/keyspace.md (one per component kind, one per node), then
 * authentication on — what `sf up` does to the etcd it runs. The identity given must be
 * etcd's `root` (the `root` certificate `sf certs` makes).
 */
export const etcdRoles: Command = {
  name: 'etcd-roles',
  summary: 'create the etcd users and roles of every component and node, then enable authentication',
  args: [],
  options: {
    etcd: { type: 'string' },
    'etcd-ca': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
    node: { type: 'string', multiple: true },
    'keyspace-root': { type: 'string' },
  },
  async run(_args, options) {
    const endpoints = typeof options.etcd === 'string' ? options.etcd.split(',') : [];
    if (endpoints.length === 0 || endpoints.some((e) => !/^https:\/\/[^\s/]+$/.test(e))) {
      throw new UsageError('--etcd must list etcd client URLs, https://HOST:PORT,…');
    }
    const files = [options['etcd-ca'], options['etcd-cert'], options['etcd-key']];
    if (files.some((f) => typeof f !== 'string')) throw new UsageError('give --etcd-ca, --etcd-cert and --etcd-key');
    const [caFile, certFile, keyFile] = files.map((f) => resolve(f as string)) as [string, string, string];
    const nodes = list(options, 'node');
    if (nodes.length === 0 || nodes.some((n) => !nodeName.test(n)))
      throw new UsageError('give each node as --node NAME');
    const root = typeof options['keyspace-root'] === 'string' ? options['keyspace-root'] : '/sf';
    let keys: Keyspace;
    try {
      keys = new Keyspace(root);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const client = connectEtcd({ endpoints, tls: { caFile, certFile, keyFile, serverName: 'sf-etcd' } });
    try {
      await applyEtcdAccess(client, { keys, nodes });
    } finally {
      client.close();
    }
    say(`etcd: users and roles for broker, scheduler, router and ${nodes.length} node agents; authentication on`);
  },
};
