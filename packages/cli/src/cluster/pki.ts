import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type EtcdTlsFiles, etcdUsers, ProcessError, SecretBox } from '@service-foundry/core';

const run = promisify(execFile);

/** The DNS name in etcd's server certificate that clients check (endpoints are IPs). */
const etcdServerName = 'sf-etcd';

const caDays = 3650;
const leafDays = 825;
const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/**
 * The cluster's own certificate authority and the identities `sf up` hands out, under
 * `$SF_HOME/pki` (mode 0700; every key 0600). Files are made once and reused by later
 * `sf up`s; a missing one (a node added) is made then.
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

  /** A client identity: the certificate's CN is the etcd user RBAC checks. */
  client(user: string): EtcdTlsFiles {
    return {
      caFile: this.caFile,
      certFile: join(this.dir, `${user}.crt`),
      keyFile: join(this.dir, `${user}.key`),
      serverName: etcdServerName,
    };
  }

  /** Makes whatever is missing: the CA, etcd's certificate, one client per user, the secrets key. */
  async ensure(nodes: readonly string[]): Promise<void> {
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
    await this.#leaf(this.server, 'sf-etcd-server', [
      'subjectAltName=DNS:sf-etcd,DNS:localhost,IP:127.0.0.1',
      'extendedKeyUsage=serverAuth,clientAuth',
    ]);
    const users = [
      etcdUsers.root,
      etcdUsers.broker,
      etcdUsers.scheduler,
      etcdUsers.router,
      ...nodes.map(etcdUsers.agent),
    ];
    for (const user of users) await this.#leaf(this.client(user), user, ['extendedKeyUsage=clientAuth']);
    if (!(await exists(this.secretsKeyFile))) await SecretBox.createKeyFile(this.secretsKeyFile);
    for (const file of [this.caKeyFile, this.secretsKeyFile]) await chmod(file, 0o600);
  }

  async #leaf(files: { certFile: string; keyFile: string }, commonName: string, extensions: string[]): Promise<void> {
    if (await exists(files.certFile)) return;
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
