import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { connectEtcd, type Etcd3, etcdUsers } from '@service-foundry/core';
// Not part of the CLI's API: the tests reach into the cluster's PKI and its isolated nodes
// as `sf up` lays them out.
import { type ClusterFile, etcdClientUrl, etcdMembersOf } from '../../cli/src/cluster/cluster-file.js';
import { isolatedRuntime } from '../../cli/src/cluster/isolated-nodes.js';
import type { NodeRuntime } from '../../cli/src/cluster/node-runtime.js';
import { ClusterPki } from '../../cli/src/cluster/pki.js';
import { trustClusterCa } from './cluster-ca.js';
import { docker, registerNodeEngines } from './docker.js';
import { makeTempDir } from './temp-dir.js';

const run = promisify(execFile);
/** The `sf` CLI's entry point, as the tests run it. */
export const cliMain = resolve(import.meta.dirname, '../../cli/dist/main.js');

export interface SfResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestCluster {
  home: string;
  clusterId: string;
  /** The operator credential `sf` uses (`/sf/v1` and `/v2`). */
  broker: { url: string; username: string; password: string };
  /** The platform's OSB credential (`/v2` only) and the read-only viewer's. */
  osbLogin: { username: string; password: string };
  viewerLogin: { username: string; password: string };
  /** An etcd client with the cluster's `root` identity, to look at what the platform stored. */
  etcdAsRoot(): Etcd3;
  /** An etcd client with another identity `sf up` made (e.g. `sf-router`). */
  etcdAs(user: string): Etcd3;
  routerPorts: { min: number; max: number };
  /** The nodes' runtime when they are isolated (namespaces, own dockerds): faults go through it. */
  nodes: NodeRuntime | undefined;
  sf(...args: string[]): Promise<SfResult>;
  /** `sf ARGS` whose stdout is JSON (`--json` among the args), parsed; a failed command throws with its stderr. */
  sfJson<T>(...args: string[]): Promise<T>;
  /**
   * The error and the platform's last warnings and errors (pino level ≥ 40, every
   * component's log), as TAP comment lines: printed by a setup step that failed, so a CI
   * report that shows only part of the output still says what went wrong.
   */
  explain(error: unknown, lines?: number): Promise<string>;
  /** `sf down --purge`, then checks nothing labelled with this cluster is left. */
  destroy(): Promise<void>;
}

/**
 * A block of 100 router ports no other test cluster on this machine uses: test files run
 * side by side, and two routers given the same range would serve each other's clients.
 * The reservation is a directory (mkdir is atomic across processes), removed on destroy.
 */
const staleReservationMs = 3 * 60 * 60 * 1000;

async function reserveRouterPorts(): Promise<{ base: number; release: () => Promise<void> }> {
  const dir = join(tmpdir(), 'sf-e2e-router-ports');
  await mkdir(dir, { recursive: true });
  // Ports 20000–32699, below the kernel's ephemeral range (32768–60999): an outgoing
  // connection (any process on the machine) may take an ephemeral port as its local port,
  // and a router could then not listen there until it is released.
  const blocks = 127;
  const first = Math.floor(Math.random() * blocks);
  for (let i = 0; i < blocks; i++) {
    const base = 20000 + ((first + i) % blocks) * 100;
    const lock = join(dir, String(base));
    try {
      await mkdir(lock);
      return { base, release: () => rm(lock, { recursive: true, force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A reservation left by a test run that was killed: no test runs for hours.
      const age = Date.now() - (await stat(lock)).mtimeMs;
      if (age > staleReservationMs) await rm(lock, { recursive: true, force: true });
    }
  }
  throw new Error(`no free router port block: remove stale reservations in ${dir}`);
}

/**
 * A whole platform from the CLI, as a user starts it: `sf up` in a fresh state folder with
 * its own router port range, so test files can run side by side. Its nodes are what `sf up`
 * chooses by default (isolated nodes on a machine that allows them) unless `sharedEngine`.
 * Files about nodes (isolation, failover, relocation, TLS between nodes, chaos) use isolated
 * nodes; files about a feature the node runtime does not change (OSB, bindings, backups,
 * bad input) share the machine's engine: each isolated node loads every image into its own
 * dockerd, which on a two-core runner costs minutes per file.
 *
 * `oneSchedulerOneBroker`: files about the data plane (backups, relocation, Redis, TLS…)
 * need neither the standby scheduler nor the second broker, and each costs CPU on a
 * two-core runner; the files about the control plane and the CLI keep `sf up`'s defaults.
 */
export async function startCluster(
  nodes = 3,
  options: { sharedEngine?: boolean; etcdMembers?: number; oneSchedulerOneBroker?: boolean } = {},
): Promise<TestCluster> {
  const { path: home, remove: removeHome } = await makeTempDir('sf-e2e');
  const { base, release } = await reserveRouterPorts();
  const routerPorts = { min: base, max: base + 99 };
  const sf = async (...args: string[]): Promise<SfResult> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cliMain, ...args], {
        env: { ...process.env, SF_HOME: home },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 600_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const upResult = await sf(
    'up',
    '--random-ports',
    '--nodes',
    String(nodes),
    '--router-ports',
    `${routerPorts.min}-${routerPorts.max}`,
    ...(options.sharedEngine ? ['--shared-engine'] : []),
    ...(options.etcdMembers ? ['--etcd-members', String(options.etcdMembers)] : []),
    ...(options.oneSchedulerOneBroker ? ['--schedulers', '1', '--brokers', '1'] : []),
  );
  const cluster = JSON.parse(
    await readFile(join(home, 'cluster.json'), 'utf8').catch(() => '{}'),
  ) as Partial<ClusterFile>;
  const runtime = cluster.clusterId && cluster.nodes ? isolatedRuntime(home, cluster as ClusterFile) : undefined;
  const unregister = registerNodeEngines(runtime?.nodes.map((n) => n.engine.socket) ?? []);
  const etcdAs = (user: string) =>
    connectEtcd({
      endpoints: cluster.clusterId ? etcdMembersOf(cluster as ClusterFile).map(etcdClientUrl) : [],
      tls: new ClusterPki(join(home, 'pki')).client(user),
    });
  const destroy = async () => {
    const down = await sf('down', '--purge');
    unregister();
    const leftovers = runtime ? await runtime.leftovers() : [];
    await removeHome();
    await release();
    if (down.code !== 0) throw new Error(`sf down --purge failed: ${down.stderr}`);
    if (leftovers.length) throw new Error(`isolated nodes left behind: ${leftovers.join('; ')}`);
    if (cluster.clusterId) {
      const left = await docker.listContainers({
        all: true,
        filters: JSON.stringify({ label: [`sf.cluster=${cluster.clusterId}`] }),
      });
      if (left.length) throw new Error(`containers left behind: ${left.map((c) => c.Id).join(', ')}`);
    }
  };
  if (upResult.code !== 0) {
    const logs = await readFile(join(home, 'logs', 'broker-1.log'), 'utf8').catch(() => '');
    await destroy().catch(() => undefined);
    throw new Error(`sf up failed (${upResult.code}): ${upResult.stderr}\n${logs.slice(-2000)}`);
  }
  trustClusterCa(join(home, 'pki', 'ca.crt'));
  const target = JSON.parse(await readFile(join(home, 'cli.json'), 'utf8')) as TestCluster['broker'];
  return {
    home,
    clusterId: cluster.clusterId ?? '',
    broker: target,
    osbLogin: { username: cluster.osbUsername ?? '', password: cluster.osbPassword ?? '' },
    viewerLogin: { username: cluster.viewerUsername ?? '', password: cluster.viewerPassword ?? '' },
    etcdAsRoot: () => etcdAs(etcdUsers.root),
    etcdAs,
    routerPorts,
    nodes: runtime,
    sf,
    sfJson: async <T>(...args: string[]): Promise<T> => {
      const result = await sf(...args);
      if (result.code !== 0) throw new Error(`sf ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
      return JSON.parse(result.stdout) as T;
    },
    explain: (error, lines = 15) => explainFailure(home, error, lines),
    destroy,
  };
}

async function explainFailure(home: string, error: unknown, lines: number): Promise<string> {
  const dir = join(home, 'logs');
  const files = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.log') && !f.startsWith('dockerd'));
  const warnings: Array<{ time: number; line: string }> = [];
  for (const file of files) {
    const text = await readFile(join(dir, file), 'utf8').catch(() => '');
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('{')) continue;
      try {
        const entry = JSON.parse(raw) as { level?: number; time?: number; msg?: string; err?: { message?: string } };
        if ((entry.level ?? 0) < 40) continue;
        const detail = entry.err?.message ? `: ${entry.err.message}` : '';
        warnings.push({ time: entry.time ?? 0, line: `${file.replace(/\.log$/, '')} ${entry.msg ?? ''}${detail}` });
      } catch {
        // A line cut short by a crash; the rest still tells.
      }
    }
  }
  const last = warnings.sort((a, b) => a.time - b.time).slice(-lines);
  const message = error instanceof Error ? error.message : String(error);
  return [`setup failed: ${message}`, `last ${last.length} platform warnings:`, ...last.map((w) => `  ${w.line}`)]
    .join('\n')
    .split('\n')
    .map((line) => `# ${line.slice(0, 400)}`)
    .join('\n');
}

/** An OSB request as another platform would send it. */
export async function osb(
  cluster: TestCluster,
  method: string,
  path: string,
  options: {
    body?: unknown;
    rawBody?: string;
    headers?: Record<string, string>;
    auth?: string | null;
    version?: string | null;
  } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const auth = options.auth === undefined ? `${cluster.broker.username}:${cluster.broker.password}` : options.auth;
  const headers: Record<string, string> = { ...options.headers };
  if (auth !== null) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  if (options.version !== null) headers['x-broker-api-version'] = options.version ?? '2.17';
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(path, cluster.broker.url), {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** A provision body for `service`/`plan` as `sf create-service` sends it (ids from the catalog). */
export async function osbProvisionBody(
  cluster: TestCluster,
  service: string,
  plan: string,
  name: string,
): Promise<Record<string, unknown>> {
  const { body } = await osb(cluster, 'GET', '/v2/catalog');
  const services = body.services as Array<{ id: string; name: string; plans: Array<{ id: string; name: string }> }>;
  const offering = services.find((s) => s.name === service);
  const planEntry = offering?.plans.find((p) => p.name === plan);
  if (!offering || !planEntry) throw new Error(`the catalog has no ${service} ${plan}`);
  return {
    service_id: offering.id,
    plan_id: planEntry.id,
    context: { platform: 'service-foundry', instance_name: name },
    parameters: {},
  };
}

/**
 * Kills a node the hard way. An isolated node loses its power: every process of its
 * namespace (dockerd, containers, agent) at once. A node sharing this machine's engine
 * loses its agent (kill -9) and its containers.
 */
export async function killNode(cluster: TestCluster, node: string): Promise<void> {
  if (cluster.nodes) {
    await cluster.nodes.powerOff(node);
    return;
  }
  const pid = Number((await readFile(join(cluster.home, 'run', `agent-${node}.pid`), 'utf8')).trim());
  // A pid file outlives its process, and the pid may be another process's by now (etcd's,
  // say): only a process that is this node's agent gets the SIGKILL.
  const environ = await readFile(`/proc/${pid}/environ`).catch(() => Buffer.alloc(0));
  if (!environ.toString('utf8').split('\0').includes(`SF_COMPONENT=agent-${node}`)) {
    throw new Error(`the agent of ${node} is not running (pid ${pid} of its pid file is not it)`);
  }
  process.kill(pid, 'SIGKILL');
  const containers = await docker.listContainers({
    filters: JSON.stringify({ label: [`sf.cluster=${cluster.clusterId}`, `sf.node=${node}`] }),
  });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .kill()
        .catch(() => undefined),
    ),
  );
}
