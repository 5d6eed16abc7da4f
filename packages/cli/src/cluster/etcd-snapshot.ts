import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { etcdMemberName, ProcessError } from '@service-foundry/core';
import { UsageError } from '../errors.js';
import { whichBinary } from './node-engine.js';

const run = promisify(execFile);

/** A client identity for etcdctl: files only, nothing secret on its command line. */
export interface EtcdctlTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** What `etcdctl snapshot status` says of a snapshot file. */
export interface SnapshotStatus {
  revision: number;
  totalKey: number;
  totalSize: number;
  hash: number;
}

async function etcdctl(): Promise<string> {
  const path = await whichBinary('etcdctl');
  if (!path) throw new ProcessError('etcdctl is not installed (bash scripts/setup.sh installs etcd-client)', null);
  return path;
}

async function etcdctlRun(args: string[]): Promise<string> {
  try {
    const { stdout } = await run(await etcdctl(), args, {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 300_000,
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new ProcessError(`etcdctl ${args[0]} ${args[1] ?? ''}: ${(e.stderr || e.message).trim()}`, null);
  }
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Reads a snapshot's revision, key count and hash; fails on a file that is not an intact snapshot. */
export async function snapshotStatus(file: string): Promise<SnapshotStatus> {
  if (!(await exists(file))) throw new UsageError(`no snapshot file ${file}`);
  const out = await etcdctlRun(['snapshot', 'status', file, '--write-out', 'json']);
  const parsed = JSON.parse(out) as Partial<SnapshotStatus>;
  if (typeof parsed.revision !== 'number' || typeof parsed.totalKey !== 'number') {
    throw new ProcessError(`${file}: etcdctl did not describe a snapshot`, null);
  }
  return parsed as SnapshotStatus;
}

/**
 * Saves a snapshot of etcd at `endpoint` to `file` (mode 0600; it holds the whole keyspace,
 * sealed secrets included). An existing file is never overwritten. etcdctl writes a
 * partial file and renames it once the snapshot is whole and its hash checked.
 */
export async function saveSnapshot(
  endpoint: string,
  tls: EtcdctlTls | undefined,
  file: string,
): Promise<SnapshotStatus & { sha256: string; file: string }> {
  if (await exists(file)) throw new UsageError(`${file} exists: choose another file (a snapshot never overwrites one)`);
  if (!(await exists(dirname(file)))) throw new UsageError(`folder ${dirname(file)} does not exist`);
  const identity = tls ? ['--cacert', tls.caFile, '--cert', tls.certFile, '--key', tls.keyFile] : [];
  await etcdctlRun(['snapshot', 'save', file, '--endpoints', endpoint, ...identity]);
  await chmod(file, 0o600);
  return { ...(await snapshotStatus(file)), sha256: await sha256(file), file };
}

/**
 * Replaces etcd's data folder by a snapshot's content, as a one-member cluster named as `sf
 * up` names it with `peerUrl`. etcd must be stopped. The snapshot is checked first, the new
 * folder made beside the old one, and the old one kept (renamed `<dataDir>.before-restore-
 * <time>`), never deleted: a wrong snapshot can be undone by renaming it back.
 */
export async function restoreSnapshot(
  file: string,
  dataDir: string,
  peerUrl: string,
): Promise<SnapshotStatus & { keptAs: string | undefined }> {
  const status = await snapshotStatus(file);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const fresh = join(dirname(dataDir), `${basename(dataDir)}.restoring-${stamp}`);
  try {
    await etcdctlRun([
      'snapshot',
      'restore',
      file,
      '--data-dir',
      fresh,
      '--name',
      etcdMemberName,
      '--initial-cluster',
      `${etcdMemberName}=${peerUrl}`,
      '--initial-advertise-peer-urls',
      peerUrl,
    ]);
  } catch (error) {
    await rm(fresh, { recursive: true, force: true });
    throw error;
  }
  await chmod(fresh, 0o700);
  let keptAs: string | undefined;
  if (await exists(dataDir)) {
    keptAs = `${dataDir}.before-restore-${stamp}`;
    await rename(dataDir, keptAs);
  }
  await rename(fresh, dataDir);
  return { ...status, keptAs };
}
