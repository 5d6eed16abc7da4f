import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { type CatalogEntry, freePort, waitFor } from '@service-foundry/core';
import type Dockerode from 'dockerode';
import { createServiceContainer } from './service-containers.js';

/**
 * Containers of the catalog's Postgres image on one user-defined Docker network, driven
 * the way the platform does: env from the catalog's replication recipe, passwords as
 * files, `sf-pg` through docker exec, and the host's real psql on each container's
 * published port.
 */

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface PgNode {
  name: string;
  container: Dockerode.Container;
  /** Published on 127.0.0.1 for the host's psql. */
  port: number;
}

export interface NodeSpec {
  name: string;
  role: 'primary' | 'replica';
  upstream?: { host: string; port: number };
}

export interface Cluster {
  docker: Dockerode;
  entry: CatalogEntry;
  network: string;
  adminPassword: string;
  replicationUser: string;
  replicationPassword: string;
  labels: Record<string, string>;
  /** Called with every container and volume made, so the test removes them. */
  track: (kind: 'container' | 'volume', id: string) => void;
}

/**
 * A bridge network named `name` for one test, and a `track` that records the containers and
 * volumes made on it: all removed by id after the test, whatever its outcome.
 */
export async function testNetwork(
  docker: Dockerode,
  t: { after(fn: () => Promise<void>): void },
  name: string,
  run: string,
): Promise<{ network: string; track: Cluster['track'] }> {
  const containers: string[] = [];
  const volumes: string[] = [];
  const network = await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { 'sf.test': run } });
  t.after(async () => {
    for (const container of containers) {
      await docker
        .getContainer(container)
        .remove({ force: true, v: true })
        .catch(() => {});
    }
    for (const volume of volumes) {
      await docker
        .getVolume(volume)
        .remove()
        .catch(() => {});
    }
    await network.remove().catch(() => {});
  });
  return { network: name, track: (kind, id) => (kind === 'container' ? containers : volumes).push(id) };
}

/** Runs a command in the container as its default user (postgres). */
export async function execIn(docker: Dockerode, container: Dockerode.Container, cmd: string[]): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
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

/** Runs `sf-pg ARGS` the way the recipe says and returns its output; fails the test otherwise. */
export async function sfPg(cluster: Cluster, node: PgNode, ...args: string[]): Promise<string> {
  const result = await execIn(cluster.docker, node.container, ['sf-pg', ...args]);
  assert.equal(result.code, 0, `sf-pg ${args.join(' ')} on ${node.name} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** Fills the `{{placeholders}}` of a recipe command, as the agent does. */
export function fillCommand(command: string[], values: Record<string, string>): string[] {
  return command.map((word) => word.replace(/\{\{(\w+)\}\}/g, (_, key: string) => values[key] ?? `{{${key}}}`));
}

function psqlArgs(port: number, statements: string[]): string[] {
  const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port)];
  return [...args, '-U', 'postgres', '-d', 'sf', ...statements.flatMap((sql) => ['-c', sql])];
}

function psqlEnv(cluster: Cluster): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: cluster.adminPassword, PGCONNECT_TIMEOUT: '5' };
}

/** The host's psql as the admin; resolves with its exit code and output. */
export function psql(cluster: Cluster, node: PgNode, statements: string[], timeoutMs = 20_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/psql',
      psqlArgs(node.port, statements),
      { env: psqlEnv(cluster), timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
      },
    );
  });
}

export async function psqlOk(
  cluster: Cluster,
  node: PgNode,
  statements: string[],
  timeoutMs?: number,
): Promise<string> {
  const result = await psql(cluster, node, statements, timeoutMs);
  assert.equal(result.code, 0, `psql on ${node.name} failed: ${result.stderr}`);
  return result.stdout;
}

/** A psql left running (a write that may block); `done` settles when it exits. */
export function psqlInBackground(
  cluster: Cluster,
  node: PgNode,
  statements: string[],
): { child: ChildProcess; done: Promise<ExecResult> } {
  const child = spawn('/usr/bin/psql', psqlArgs(node.port, statements), { env: psqlEnv(cluster) });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = once(child, 'exit').then(([code]) => ({
    code: code as number | null,
    stdout: stdout.trim(),
    stderr: stderr.trim(),
  }));
  return { child, done };
}

/** Creates and starts a node: a fresh volume, the catalog's env plus the recipe's replication env and files. */
export async function startNode(cluster: Cluster, spec: NodeSpec): Promise<PgNode> {
  const { docker, entry } = cluster;
  const recipe = entry.replication;
  assert.ok(recipe, 'the postgres entry has a replication recipe');
  const port = await freePort();
  await docker.createVolume({ Name: spec.name, Labels: cluster.labels });
  cluster.track('volume', spec.name);
  const env: Record<string, string> = {
    [recipe.env.role]: spec.role,
    [recipe.env.replicationUser]: cluster.replicationUser,
    [recipe.env.replicaName]: spec.name,
  };
  if (spec.upstream) {
    env[recipe.env.upstreamHost] = spec.upstream.host;
    env[recipe.env.upstreamPort] = String(spec.upstream.port);
  }
  const secrets = { adminPassword: cluster.adminPassword, replicationPassword: cluster.replicationPassword };
  const container = await createServiceContainer(
    docker,
    entry,
    secrets,
    {
      name: spec.name,
      Labels: cluster.labels,
      ExposedPorts: { [`${entry.runtime.port}/tcp`]: {} },
      HostConfig: {
        NetworkMode: cluster.network,
        PortBindings: { [`${entry.runtime.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
        Mounts: [{ Type: 'volume', Source: spec.name, Target: entry.runtime.volumePath }],
      },
    },
    env,
  );
  cluster.track('container', container.id);
  await container.start();
  return { name: spec.name, container, port };
}

/** The node's address on the test network, where peers stream from. */
export async function nodeIp(cluster: Cluster, node: PgNode): Promise<string> {
  const ip = (await node.container.inspect()).NetworkSettings.Networks[cluster.network]?.IPAddress;
  assert.ok(ip, `${node.name} has an address on ${cluster.network}`);
  return ip;
}

export async function logsOf(node: PgNode): Promise<string> {
  return (await node.container.logs({ stdout: true, stderr: true })).toString();
}

/** Waits for the catalog's readiness command; fails at once when the container exits. */
export async function awaitReady(cluster: Cluster, node: PgNode, timeoutMs?: number): Promise<number> {
  const started = Date.now();
  const outcome = await waitFor(
    async () => {
      const state = (await node.container.inspect()).State;
      if (!state.Running) return { exited: state.ExitCode };
      const ready = await execIn(cluster.docker, node.container, cluster.entry.runtime.readiness.exec);
      return ready.code === 0 ? { exited: undefined } : false;
    },
    {
      description: `${node.name} ready`,
      timeoutMs: timeoutMs ?? cluster.entry.runtime.readiness.timeoutSeconds * 1000,
      intervalMs: 100,
    },
  );
  if (outcome.exited !== undefined) {
    assert.fail(
      `${node.name} exited with ${outcome.exited}:\n${(await logsOf(node)).split('\n').slice(-30).join('\n')}`,
    );
  }
  return Date.now() - started;
}
