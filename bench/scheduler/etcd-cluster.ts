import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitFor } from '@service-foundry/core';

export interface EtcdCluster {
  /** Client URLs, one per member. */
  endpoints: string[];
  pids: number[];
  stop(): Promise<void>;
}

/**
 * Starts a 3-member etcd on loopback (real etcd processes, real raft, real fsync; distinct
 * client and peer ports) and waits until every member reports healthy.
 */
export async function startEtcdCluster(dir: string, members = 3): Promise<EtcdCluster> {
  const ports = [];
  for (let i = 0; i < members; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ports.map((_, i) => `m${i}`);
  const initialCluster = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(',');
  const token = `bench-${process.pid}-${Date.now()}`;
  const children: ChildProcess[] = [];
  const endpoints = ports.map((p) => `http://127.0.0.1:${p.client}`);
  for (const [i, p] of ports.entries()) {
    const dataDir = join(dir, `etcd-${i}`);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const log = await open(join(dir, `etcd-${i}.log`), 'a');
    const endpoint = endpoints[i] ?? '';
    children.push(
      spawn(
        'etcd',
        [
          ['--name', names[i] ?? ''],
          ['--data-dir', dataDir],
          ['--listen-client-urls', endpoint],
          ['--advertise-client-urls', endpoint],
          ['--listen-peer-urls', `http://127.0.0.1:${p.peer}`],
          ['--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`],
          ['--initial-cluster', initialCluster],
          ['--initial-cluster-token', token],
          ['--initial-cluster-state', 'new'],
        ].flat(),
        { stdio: ['ignore', log.fd, log.fd] },
      ),
    );
    await log.close();
  }
  const stop = async () => {
    await Promise.all(
      children.map((child) => {
        if (child.exitCode !== null || child.signalCode !== null) return undefined;
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        return done;
      }),
    );
  };
  try {
    for (const endpoint of endpoints) {
      await waitFor(
        async () => {
          for (const child of children) if (child.exitCode !== null) throw new Error(`an etcd member exited (${dir})`);
          const res = await fetch(`${endpoint}/health`);
          return res.ok && ((await res.json()) as { health?: string }).health === 'true';
        },
        { description: `etcd member ${endpoint}`, timeoutMs: 60_000, intervalMs: 50 },
      );
    }
  } catch (error) {
    for (const child of children) child.kill('SIGKILL');
    throw error;
  }
  return { endpoints, pids: children.map((c) => c.pid ?? 0), stop };
}

/** Sum of finished unary gRPC requests per method over all members (etcd's own count). */
export async function unaryRequests(endpoints: readonly string[]): Promise<Map<string, number>> {
  const totals = new Map<string, number>();
  for (const endpoint of endpoints) {
    const text = await (await fetch(`${endpoint}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith('grpc_server_handled_total{') || !line.includes('grpc_type="unary"')) continue;
      const method = /grpc_method="([^"]+)"/.exec(line)?.[1] ?? '?';
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      totals.set(method, (totals.get(method) ?? 0) + value);
    }
  }
  return totals;
}

export function difference(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [method, value] of after) {
    const delta = value - (before.get(method) ?? 0);
    if (delta > 0) out.set(method, delta);
  }
  return out;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}
