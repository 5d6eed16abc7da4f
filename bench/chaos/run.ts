/**
 * `npm run bench:chaos`: `sf chaos` rounds on a three-node isolated cluster (an etcd member
 * inside each node), across Postgres
 * remote-fsync, Postgres async and Redis (received, WAIT 1), every fault kind in turn.
 * Each round is the user's command (`sf chaos NAME --fault K --json`); this file only picks
 * the rounds and adds up their verdicts.
 *
 * FAULTS (default 100) rounds, DURATION seconds each (default 10). The last line is one JSON
 * object:
 * - lost_sync: acknowledged writes lost on remote-fsync instances (promise: 0);
 * - lost_async: the same on async Postgres and on Redis (allowed by their promise);
 * - split_brain: rounds where the old primary accepted a direct write after the new one was
 *   promoted; old_primary_writes_after_promotion: how many such writes in all;
 * - rto_p50_s / rto_p99_s: the longest write gap a client saw, over the rounds whose fault
 *   makes the platform fail over (the primary's node lost, cut off, cut from etcd, or its
 *   agent paused). Faults the platform does not fail over for (peer partition, a killed
 *   control-plane process) are reported per kind, not mixed into the RTO.
 */
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { percentile } from '@service-foundry/test-support/percentile';
import { chaosRound, type RoundJson } from './rounds.js';

interface Planned {
  instance: string;
  kind: string;
  target: string;
  /** The platform is expected to promote another replica: the gap counts as an RTO. */
  failover: boolean;
}

const faults = Number(process.env.FAULTS ?? 100);
const durationS = Number(process.env.DURATION ?? 10);

const instances = [
  { name: 'chaos-pg-sync', service: 'postgres', params: { durability: 'remote-fsync' }, sync: true },
  { name: 'chaos-pg-async', service: 'postgres', params: { durability: 'async' }, sync: false },
  { name: 'chaos-redis', service: 'redis', params: { durability: 'received' }, sync: false },
] as const;

/** One cycle: every kind, on every instance; the cycle repeats until FAULTS rounds ran. */
function plan(nodes: readonly string[]): Planned[] {
  const perInstance = (instance: string, index: number): Planned[] => [
    { instance, kind: 'power-loss', target: 'primary', failover: true },
    { instance, kind: 'isolate', target: 'primary', failover: true },
    { instance, kind: 'etcd-partition', target: 'primary', failover: true },
    { instance, kind: 'pause-agent', target: 'primary', failover: true },
    { instance, kind: 'peer-partition', target: 'primary', failover: false },
    { instance, kind: 'power-loss', target: 'replica', failover: false },
    { instance, kind: 'kill-process', target: 'router-1', failover: false },
    { instance, kind: 'kill-process', target: index % 2 ? 'broker' : 'scheduler', failover: false },
    // The loss of one of the three members (each inside its node), a different one per instance.
    { instance, kind: 'kill-process', target: `etcd-${(index % 3) + 1}`, failover: false },
    { instance, kind: 'kill-process', target: `agent-${nodes[index % nodes.length]}`, failover: false },
  ];
  // Kind-major: a shorter run still meets every kind on every instance early.
  const rows = instances.map((instance, index) => perInstance(instance.name, index));
  return (rows[0] ?? []).flatMap((_, kind) => rows.map((row) => row[kind] as Planned));
}

async function provision(cluster: TestCluster): Promise<void> {
  await Promise.all(
    instances.map(async (instance) => {
      const created = await cluster.sf(
        'create-service',
        instance.service,
        'ha-small',
        instance.name,
        '-c',
        JSON.stringify(instance.params),
      );
      if (created.code !== 0) throw new Error(`${instance.name}: ${created.stderr || created.stdout}`);
    }),
  );
}

async function runRound(cluster: TestCluster, round: Planned): Promise<RoundJson | string> {
  return chaosRound(
    cluster,
    instances.map((i) => i.name),
    { instance: round.instance, kind: round.kind, target: round.target, durationS },
  );
}

const figure = (ms: number) => Number((ms / 1000).toFixed(2));

type Outcome = { planned: Planned; report: RoundJson };

const syncNames = new Set<string>(instances.filter((i) => i.sync).map((i) => i.name));

/** The figures of the rounds so far: printed after each round, and as the last line. */
function figures(results: readonly Outcome[], errors: number) {
  const lost = (sync: boolean) =>
    results
      .filter((r) => syncNames.has(r.planned.instance) === sync)
      .reduce((sum, r) => sum + r.report.verdict.lost.length, 0);
  const rtos = results.filter((r) => r.planned.failover).map((r) => r.report.verdict.longestGapMs);
  return {
    faults: results.length,
    kinds: [...new Set(results.map((r) => r.planned.kind))],
    errors,
    lost_sync: lost(true),
    lost_async: lost(false),
    split_brain: results.filter((r) => r.report.verdict.oldPrimaryWritesAfterPromotion > 0).length,
    old_primary_writes_after_promotion: results.reduce(
      (sum, r) => sum + r.report.verdict.oldPrimaryWritesAfterPromotion,
      0,
    ),
    rto_rounds: rtos.length,
    rto_p50_s: figure(percentile(rtos, 50)),
    rto_p99_s: figure(percentile(rtos, 99)),
  };
}

// Three etcd members, one inside each node, as on hosts: a node's power loss, isolation or
// etcd partition also takes or cuts off a member.
const cluster = await startCluster(3, { etcdMembers: 3 });
try {
  process.stderr.write(`cluster up; provisioning ${instances.map((i) => i.name).join(', ')}\n`);
  await provision(cluster);
  const cycle = plan(['node-1', 'node-2', 'node-3']);
  const results: Outcome[] = [];
  const errors: Array<{ planned: Planned; error: string }> = [];
  // SIGINT/SIGTERM end the run after the current round: its figures are still printed.
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    process.stderr.write('stopping after this round\n');
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  for (let i = 0; i < faults && !interrupted; i++) {
    const planned = cycle[i % cycle.length] as Planned;
    const started = Date.now();
    const report = await runRound(cluster, planned);
    const label = `${i + 1}/${faults} ${planned.instance} ${planned.kind} ${planned.target}`;
    if (typeof report === 'string') {
      errors.push({ planned, error: report });
      process.stderr.write(`${label}: ERROR ${report}\n`);
      continue;
    }
    results.push({ planned, report });
    const v = report.verdict;
    process.stderr.write(
      `${label}: gap ${figure(v.longestGapMs)} s, acked ${v.acknowledged}, lost ${v.lost.length}, ` +
        `old-primary writes ${v.oldPrimaryWritesAfterPromotion}, ${v.promiseKept ? 'kept' : `BROKEN (${v.broken.join('; ')})`} ` +
        `[${((Date.now() - started) / 1000).toFixed(0)} s]\n`,
    );
    process.stderr.write(`so far: ${JSON.stringify(figures(results, errors.length))}\n`);
  }

  console.log('instance         fault            target       rounds  gap p50   gap max   lost  broken');
  const groups = new Map<string, typeof results>();
  for (const r of results) {
    const key = `${r.planned.instance}|${r.planned.kind}|${r.planned.target}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, group] of groups) {
    const [instance, kind, target] = key.split('|');
    const gaps = group.map((r) => r.report.verdict.longestGapMs);
    console.log(
      [
        (instance ?? '').padEnd(16),
        (kind ?? '').padEnd(16),
        (target ?? '').padEnd(12),
        String(group.length).padStart(6),
        `${figure(percentile(gaps, 50))} s`.padStart(9),
        `${figure(Math.max(...gaps))} s`.padStart(9),
        String(group.reduce((s, r) => s + r.report.verdict.lost.length, 0)).padStart(5),
        String(group.filter((r) => !r.report.verdict.promiseKept).length).padStart(7),
      ].join(' '),
    );
  }
  for (const { planned, error } of errors) console.log(`error: ${planned.instance} ${planned.kind}: ${error}`);
  console.log(
    `${results.length} rounds, ${errors.length} errors; RTO over the failover rounds ` +
      `(target p50 <= 3 s, p99 <= 6 s); kill-process etcd-N is the loss of one of the three etcd members`,
  );
  console.log(JSON.stringify(figures(results, errors.length)));
} finally {
  await cluster.destroy();
}
