import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type { CatalogEntry } from '@service-foundry/core';
import type Dockerode from 'dockerode';
import type { ExecResult } from './postgres-nodes.js';

/**
 * The agent's side of a catalog `backup` recipe, for the image tests: run `prepare` in the
 * container with `{{path}}` filled in, then copy `<volume mountpoint>/<dir>` into the root
 * of a new volume (what a restore does) and remove it from the source. The tests run as
 * root on the Docker host, so volumes are reached through their mountpoints.
 */

const run = promisify(execFile);

/** Things a test made, removed in reverse order by `removeAll` (its t.after). */
export class Made {
  private readonly items: Array<{ kind: 'container' | 'volume' | 'network'; id: string }> = [];
  constructor(private readonly docker: Dockerode) {}

  track = (kind: 'container' | 'volume' | 'network', id: string): void => {
    this.items.push({ kind, id });
  };

  async removeAll(): Promise<void> {
    for (const { kind, id } of this.items.reverse()) {
      const removal =
        kind === 'container'
          ? this.docker.getContainer(id).remove({ force: true, v: true })
          : kind === 'volume'
            ? this.docker.getVolume(id).remove()
            : this.docker.getNetwork(id).remove();
      await removal.catch(() => {});
    }
  }
}

/** docker exec as the image's user, with optional extra environment; never throws on a non-zero exit. */
export async function execWith(
  docker: Dockerode,
  container: Dockerode.Container,
  cmd: string[],
  env: string[] = [],
): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  docker.modem.demuxStream(stream, stdout, stderr);
  await once(stream, 'end');
  return {
    code: (await exec.inspect()).ExitCode,
    stdout: Buffer.concat(out).toString().trim(),
    stderr: Buffer.concat(err).toString().trim(),
  };
}

/** The container path `{{path}}` stands for: `<volumePath>/<dir>`. */
export function backupPath(entry: CatalogEntry): string {
  assert.ok(entry.backup, `${entry.osb.name} has a backup recipe`);
  return `${entry.runtime.volumePath}/${entry.backup.dir}`;
}

/** The recipe's prepare command with `{{path}}` filled in, as the agent runs it. */
export function prepareCommand(entry: CatalogEntry): string[] {
  assert.ok(entry.backup, `${entry.osb.name} has a backup recipe`);
  const path = backupPath(entry);
  return entry.backup.prepare.map((word) => word.replaceAll('{{path}}', path));
}

/** Runs `prepare` in the container; its result and how long it took. */
export async function runPrepare(
  docker: Dockerode,
  entry: CatalogEntry,
  container: Dockerode.Container,
  env: string[] = [],
): Promise<ExecResult & { ms: number }> {
  const started = Date.now();
  const result = await execWith(docker, container, prepareCommand(entry), env);
  return { ...result, ms: Date.now() - started };
}

export async function mountpoint(docker: Dockerode, volume: string): Promise<string> {
  const inspected = (await docker.getVolume(volume).inspect()) as { Mountpoint?: string };
  assert.ok(inspected.Mountpoint, `volume ${volume} has a mountpoint`);
  return inspected.Mountpoint;
}

/** `path mode uid` of every entry under `dir` (depth first, sorted), `.` being `dir` itself. */
export async function treeOf(dir: string, depth = 1): Promise<string[]> {
  const lines: string[] = [];
  async function walk(path: string, rel: string, level: number): Promise<void> {
    const info = await lstat(path);
    lines.push(`${rel} ${(info.mode & 0o7777).toString(8).padStart(4, '0')} ${info.uid}`);
    if (info.isDirectory() && level < depth) {
      for (const name of (await readdir(path)).sort()) {
        await walk(join(path, name), rel === '.' ? name : `${rel}/${name}`, level + 1);
      }
    }
  }
  await walk(dir, '.', 0);
  return lines;
}

/**
 * What the agent and a restore do with the prepared folder: its content (and its own
 * owner and mode, through `/.`) becomes the root of the new, never mounted volume; then
 * the folder is removed from the source volume.
 */
export async function restoreIntoNewVolume(
  docker: Dockerode,
  entry: CatalogEntry,
  source: string,
  target: string,
  made: Made,
): Promise<number> {
  assert.ok(entry.backup);
  const started = Date.now();
  const from = join(await mountpoint(docker, source), entry.backup.dir);
  await docker.createVolume({ Name: target, Labels: { 'sf.test': 'images' } });
  made.track('volume', target);
  await run('cp', ['-a', `${from}/.`, `${await mountpoint(docker, target)}/`]);
  await run('rm', ['-rf', from]);
  return Date.now() - started;
}
