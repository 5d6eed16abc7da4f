import { readFile } from 'node:fs/promises';
import {
  CatalogError,
  type ClientTlsMode,
  type InstanceSecret,
  InvalidConfigError,
  type SecretFilesSpec,
  type ServiceRuntime,
} from '@service-foundry/core';
import { pack } from 'tar-stream';

/**
 * A container's passwords travel as files, never as environment variables: Docker shows a
 * container's environment to anyone who can inspect it, and every `docker exec` inherits
 * it. The agent writes these files into the created container (a tar through the Docker
 * API) before its first start; the image reads the paths from `*_FILE` variables.
 */

/** Names of the files inside `runtime.secretFiles.dir`. */
export const secretFileNames = {
  adminPassword: 'admin-password',
  replicationPassword: 'replication-password',
  /** The same name with this suffix: the previous generation's password while a rotation runs (empty: none). */
  previousSuffix: '.previous',
  tlsCert: 'tls-cert',
  tlsKey: 'tls-key',
  tlsCa: 'tls-ca',
} as const;

/**
 * The variables through which an image with `runtime.tls` learns about TLS: the paths of
 * the node's certificate, its key and the cluster CA (files, never their content), the
 * plan's client mode, and how a replica checks its upstream's certificate.
 */
export const tlsEnv = {
  certFile: 'SF_TLS_CERT_FILE',
  keyFile: 'SF_TLS_KEY_FILE',
  caFile: 'SF_TLS_CA_FILE',
  clients: 'SF_TLS_CLIENTS',
  peerVerify: 'SF_TLS_PEER_VERIFY',
} as const;

/**
 * How a replica checks its upstream's certificate, in libpq's words. `verify-full`: issued
 * by the cluster CA and naming the address dialled, which holds when replicas stream from
 * node addresses (`peerAddress: node`: the node's certificate names its address).
 * `verify-ca`: issued by the cluster CA; for replicas streaming from container addresses on
 * one shared Docker Engine, which Docker hands out at start and no certificate can name.
 */
export type PeerVerify = 'verify-full' | 'verify-ca';

/** The node's service certificate as a container receives it (agent config `serviceTls`). */
export interface ContainerTls {
  cert: string;
  key: string;
  ca: string;
  peerVerify: PeerVerify;
}

/** Reads the node's service certificate, key and CA once (agent start); a missing file is a config error. */
export async function loadContainerTls(
  files: { caFile: string; certFile: string; keyFile: string },
  peerAddress: 'container' | 'node',
): Promise<ContainerTls> {
  const problems: string[] = [];
  const read = async (field: keyof typeof files) => {
    const content = await readFile(files[field], 'utf8').catch((error: NodeJS.ErrnoException) => {
      problems.push(`serviceTls.${field} ${files[field]}: ${error.code ?? error.message}`);
      return '';
    });
    if (content !== '' && !content.includes('-----BEGIN ')) problems.push(`serviceTls.${field} holds no PEM block`);
    return content;
  };
  const [cert, key, ca] = [await read('certFile'), await read('keyFile'), await read('caFile')];
  if (problems.length > 0) throw new InvalidConfigError('agent config', problems);
  return { cert, key, ca, peerVerify: peerAddress === 'node' ? 'verify-full' : 'verify-ca' };
}

export interface SecretFiles {
  /** Where the files go and who owns them (the catalog's `runtime.secretFiles`). */
  spec: SecretFilesSpec;
  /** File name (one path segment) → content. */
  files: Record<string, string>;
}

/** The files a replica's container receives and the environment naming them (paths only). */
export interface ReplicaSecrets {
  secretFiles: SecretFiles;
  env: Record<string, string>;
}

export interface ReplicaSecretsOptions {
  /**
   * Also the replication password, under the recipe's `replicationPasswordFile` variable.
   * @default undefined (no replication password: a standalone container)
   */
  replicationPasswordFileEnv?: string;
  /**
   * Also the node's certificate, key and CA (`tlsEnv`), and the plan's client TLS mode.
   * @default undefined (no TLS: a service without `runtime.tls`)
   */
  tls?: { material: ContainerTls; clients: ClientTlsMode };
}

/**
 * The admin password (and, for a replicated container, the replication password) as files.
 * Each has a `.previous` sibling: the password a running rotation replaces, or empty. The
 * image looks for it only when the current one is refused, so its commands keep logging in
 * between the agent putting new files and the server taking them on (`rotatePasswords`).
 */
export function replicaSecrets(
  runtime: ServiceRuntime,
  secret: InstanceSecret,
  options: ReplicaSecretsOptions = {},
): ReplicaSecrets {
  const { dir } = runtime.secretFiles;
  const previous = secret.previous;
  const files: Record<string, string> = {
    [secretFileNames.adminPassword]: secret.adminPassword,
    [`${secretFileNames.adminPassword}${secretFileNames.previousSuffix}`]: previous?.adminPassword ?? '',
  };
  const env: Record<string, string> = {
    [runtime.adminPasswordFileEnv]: `${dir}/${secretFileNames.adminPassword}`,
  };
  if (options.replicationPasswordFileEnv !== undefined && secret.replicationPassword !== undefined) {
    files[secretFileNames.replicationPassword] = secret.replicationPassword;
    files[`${secretFileNames.replicationPassword}${secretFileNames.previousSuffix}`] =
      previous?.replicationPassword ?? '';
    env[options.replicationPasswordFileEnv] = `${dir}/${secretFileNames.replicationPassword}`;
  }
  if (options.tls) {
    const { material, clients } = options.tls;
    // The key is as secret as a password (0400, the service's user); the certificate and
    // the CA travel the same way so the image finds all three in one place.
    files[secretFileNames.tlsCert] = material.cert;
    files[secretFileNames.tlsKey] = material.key;
    files[secretFileNames.tlsCa] = material.ca;
    env[tlsEnv.certFile] = `${dir}/${secretFileNames.tlsCert}`;
    env[tlsEnv.keyFile] = `${dir}/${secretFileNames.tlsKey}`;
    env[tlsEnv.caFile] = `${dir}/${secretFileNames.tlsCa}`;
    env[tlsEnv.clients] = clients;
    env[tlsEnv.peerVerify] = material.peerVerify;
  }
  return { secretFiles: { spec: runtime.secretFiles, files }, env };
}

/** Throws unless `dir` is a plain absolute path the tar can name (the catalog checks it too). */
function checkedDir(dir: string): string {
  if (!/^(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/.test(dir))
    throw new CatalogError(`secret files directory ${dir} is not a plain path`);
  return dir.slice(1);
}

/**
 * A tar to extract at the container's `/`: the directory (mode 0500) and its files (mode
 * 0400), owned by the spec's uid:gid, so only the service's own user can read them. Docker
 * creates missing parents (root, 0755) and replaces files that exist, so putting the same
 * archive twice is harmless.
 */
export async function secretFilesArchive(secretFiles: SecretFiles): Promise<Buffer> {
  const dir = checkedDir(secretFiles.spec.dir);
  const { uid, gid } = secretFiles.spec;
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    archive.once('end', resolve);
    archive.once('error', reject);
  });
  const mtime = new Date();
  archive.entry({ name: `${dir}/`, type: 'directory', mode: 0o500, uid, gid, mtime });
  for (const [name, content] of Object.entries(secretFiles.files)) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name))
      throw new CatalogError(`secret file name ${name} is not one path segment`);
    archive.entry({ name: `${dir}/${name}`, type: 'file', mode: 0o400, uid, gid, mtime }, content);
  }
  archive.finalize();
  await ended;
  return Buffer.concat(chunks);
}
