import { CatalogError, type InstanceSecret, type SecretFilesSpec, type ServiceRuntime } from '@service-foundry/core';
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
} as const;

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
}

/** The admin password (and, for a replicated container, the replication password) as files. */
export function replicaSecrets(
  runtime: ServiceRuntime,
  secret: InstanceSecret,
  options: ReplicaSecretsOptions = {},
): ReplicaSecrets {
  const { dir } = runtime.secretFiles;
  const files: Record<string, string> = { [secretFileNames.adminPassword]: secret.adminPassword };
  const env: Record<string, string> = {
    [runtime.adminPasswordFileEnv]: `${dir}/${secretFileNames.adminPassword}`,
  };
  if (options.replicationPasswordFileEnv !== undefined && secret.replicationPassword !== undefined) {
    files[secretFileNames.replicationPassword] = secret.replicationPassword;
    env[options.replicationPasswordFileEnv] = `${dir}/${secretFileNames.replicationPassword}`;
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
