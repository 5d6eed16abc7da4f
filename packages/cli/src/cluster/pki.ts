import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type EtcdTlsFiles,
  etcdUsers,
  InvalidInputError,
  ProcessError,
  SecretBox,
  volumePeerPrefix,
} from '@service-foundry/core';

const run = promisify(execFile);

/** The DNS name in etcd's server certificate that clients check (endpoints are IPs). */
const etcdServerName = 'sf-etcd';

const caDays = 3650;
const leafDays = 825;
const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A CA file and one certificate with its key (all PEM). */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A node whose address goes into its certificates. */
export interface PkiNode {
  name: string;
  /** The node's IPv4 address: its volume server and published service ports listen there. */
  address: string;
}

export interface PkiOptions {
  /**
   * Hosts (IP addresses or DNS names) clients dial to reach a service instance: the
   * router's. Every service certificate names them, so `sslmode=verify-full` through the
   * router holds. @default []
   */
  routerHosts?: readonly string[];
  /**
   * More addresses etcd serves clients on besides 127.0.0.1 (this machine's address on the
   * isolated nodes' segment); its server certificate names them. @default []
   */
  etcdHosts?: readonly string[];
}

/**
 * The cluster's own certificate authority and the identities `sf up` hands out, under
 * `$SF_HOME/pki` (mode 0700; every key 0600). Files are made once and reused by later
 * `sf up`s; a missing one (a node added) is made then, and a node certificate whose names
 * no longer match (an address changed) is made again.
 *
 * | file | CN | names (SAN) | usage | held by |
 * | --- | --- | --- | --- | --- |
 * | `ca.crt` / `ca.key` | service-foundry cluster CA | — | signs everything | `sf up` only (the key) |
 * | `etcd-server.*` | sf-etcd-server | sf-etcd, localhost, 127.0.0.1, the isolated nodes' segment address | server, client | etcd |
 * | `<user>.*` | the etcd user | — | client | one component each |
 * | `volumes-<node>.*` | `sf-volumes.<node>` | the node's address | server, client | that node's agent (volume server and pulls, mutual TLS) |
 * | `service-<node>.*` | `sf-service.<node>` | the node's address, the router's hosts | server | that node's agent, which puts it into its service containers |
 *
 * The CA key never leaves this folder: agents get finished certificates, never the means
 * to make one.
 */
export class ClusterPki {
  constructor(readonly dir: string) {}

  get caFile(): string {
    return join(this.dir, 'ca.crt');
  }
  get caKeyFile(): string {
    return join(this.dir, 'ca.key');
  }
  /** The key that seals secrets stored in etcd (broker, scheduler and agents read it). */
  get secretsKeyFile(): string {
    return join(this.dir, 'secrets.key');
  }
  /** etcd's server and peer certificate. */
  get server(): { certFile: string; keyFile: string } {
    return { certFile: join(this.dir, 'etcd-server.crt'), keyFile: join(this.dir, 'etcd-server.key') };
  }

  /** A node agent's volume server and client identity (mutual TLS between agents). */
  volumeTls(node: string): TlsFiles {
    return {
      caFile: this.caFile,
      certFile: join(this.dir, `volumes-${node}.crt`),
      keyFile: join(this.dir, `volumes-${node}.key`),
    };
  }

  /** The certificate a node's service containers present (Postgres, Redis): replication and clients. */
  serviceTls(node: string): TlsFiles {
    return {
      caFile: this.caFile,
      certFile: join(this.dir, `service-${node}.crt`),
      keyFile: join(this.dir, `service-${node}.key`),
    };
  }

  /** A client identity: the certificate's CN is the etcd user RBAC checks. */
  client(user: string): EtcdTlsFiles {
    return {
      caFile: this.caFile,
      certFile: join(this.dir, `${user}.crt`),
      keyFile: join(this.dir, `${user}.key`),
      serverName: etcdServerName,
    };
  }

  /**
   * Makes whatever is missing: the CA, etcd's certificate, one client per user, the secrets
   * key, and for each node given with its address its volume and service certificates.
   */
  async ensure(nodes: readonly (string | PkiNode)[], options: PkiOptions = {}): Promise<void> {
    const names = nodes.map((node) => (typeof node === 'string' ? node : node.name));
    const addressed = nodes.filter((node): node is PkiNode => typeof node !== 'string');
    // Every name is checked before anything is made.
    for (const host of [...addressed.map((node) => node.address), ...(options.routerHosts ?? [])]) sanOf(host);
    await this.#ensureCa();
    const users = [
      etcdUsers.root,
      etcdUsers.broker,
      etcdUsers.scheduler,
      etcdUsers.router,
      ...names.map(etcdUsers.agent),
    ];
    const etcdSans = ['DNS:sf-etcd', 'DNS:localhost', 'IP:127.0.0.1', ...(options.etcdHosts ?? []).map(sanOf)];
    await this.#leaf(this.server, 'sf-etcd-server', [
      `subjectAltName=${[...new Set(etcdSans)].join(',')}`,
      'extendedKeyUsage=serverAuth,clientAuth',
    ]);
    for (const user of users) await this.#leaf(this.client(user), user, ['extendedKeyUsage=clientAuth']);
    await this.ensureNodeCertificates(addressed, options);
    if (!(await exists(this.secretsKeyFile))) await SecretBox.createKeyFile(this.secretsKeyFile);
    for (const file of [this.caKeyFile, this.secretsKeyFile]) await chmod(file, 0o600);
  }

  /**
   * The CA when missing, and each node's volume and service certificates (see the table
   * above): what an agent needs for TLS between nodes, and all a test of it needs.
   */
  async ensureNodeCertificates(nodes: readonly PkiNode[], options: PkiOptions = {}): Promise<void> {
    const routerSans = (options.routerHosts ?? []).map(sanOf);
    const own = nodes.map((node) => sanOf(node.address));
    await this.#ensureCa();
    for (const [index, node] of nodes.entries()) {
      await this.#leaf(this.volumeTls(node.name), `${volumePeerPrefix}${node.name}`, [
        `subjectAltName=${own[index]}`,
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth,clientAuth',
      ]);
      await this.#leaf(this.serviceTls(node.name), `sf-service.${node.name}`, [
        `subjectAltName=${[...new Set([own[index], ...routerSans])].join(',')}`,
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
      ]);
    }
    await chmod(this.caKeyFile, 0o600);
  }

  async #ensureCa(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    if (!(await exists(this.caFile))) {
      await openssl([
        'req',
        '-x509',
        ...curve,
        '-keyout',
        this.caKeyFile,
        '-out',
        this.caFile,
        '-days',
        String(caDays),
        '-subj',
        '/CN=service-foundry cluster CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
    }
  }

  async #leaf(files: { certFile: string; keyFile: string }, commonName: string, extensions: string[]): Promise<void> {
    if (await this.#current(files.certFile, extensions)) return;
    const csr = `${files.certFile}.csr`;
    const ext = `${files.certFile}.ext`;
    try {
      await openssl(['req', '-new', ...curve, '-keyout', files.keyFile, '-out', csr, '-subj', `/CN=${commonName}`]);
      await chmod(files.keyFile, 0o600);
      await writeFile(ext, `${extensions.join('\n')}\n`, { mode: 0o600 });
      await openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        this.caFile,
        '-CAkey',
        this.caKeyFile,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        String(leafDays),
        '-extfile',
        ext,
        '-out',
        files.certFile,
      ]);
    } finally {
      await rm(csr, { force: true });
      await rm(ext, { force: true });
    }
  }

  /**
   * An existing certificate is kept unless it names other hosts than asked for (a node's
   * address changed) or another CA issued it: then it is made again.
   */
  async #current(certFile: string, extensions: readonly string[]): Promise<boolean> {
    if (!(await exists(certFile))) return false;
    const wanted = extensions.find((e) => e.startsWith('subjectAltName='));
    if (wanted === undefined) return true;
    try {
      const certificate = new X509Certificate(await readFile(certFile));
      const ca = new X509Certificate(await readFile(this.caFile));
      if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) return false;
      const shown = wanted
        .slice('subjectAltName='.length)
        .split(',')
        .map((san) => san.replace(/^IP:/, 'IP Address:'));
      return certificate.subjectAltName === shown.join(', ');
    } catch {
      return false;
    }
  }
}

/** `IP:a.b.c.d` or `DNS:name` for a host; anything else is refused (it goes into openssl's config). */
function sanOf(host: string): string {
  if (isIP(host) !== 0) return `IP:${host}`;
  if (
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
      host,
    )
  ) {
    return `DNS:${host}`;
  }
  throw new InvalidInputError(`${JSON.stringify(host)} is neither an IP address nor a DNS name`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function openssl(args: string[]): Promise<void> {
  // umask 077 for everything openssl writes: keys are never readable by others, not even briefly.
  const previous = process.umask(0o077);
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (error) {
    const e = error as { code?: string | number; stderr?: string };
    if (e.code === 'ENOENT') throw new ProcessError('openssl is not installed (Debian: apt-get install openssl)', null);
    throw new ProcessError(`openssl ${args[0]} failed: ${(e.stderr ?? String(error)).trim().slice(0, 500)}`, null);
  } finally {
    process.umask(previous);
  }
}
