/**
 * `npm run bench:control-plane`: what a sick control plane costs the data plane, on a
 * three-node isolated cluster with a Postgres `ha-small` at `remote-fsync`. Each figure is a
 * `sf chaos` round (the user's command) under its continuous writer through the routers:
 *
 * - router_kill_gap_s: kill -9 of router-1, the router the writer connects to first; its
 *   supervisor restarts it and the writer goes on through router-2 (target ≤ 1 s);
 * - leader_kill_gap_s: kill -9 of the leading scheduler (`--target scheduler`); the standby
 *   leads within ~2 s; data does not flow through either (target: no gap);
 * - etcd_outage_30s_write_gap_s: etcd SIGSTOPped for 30 s (`ETCD_OUTAGE_S`), then resumed
 *   (target ≤ 1 s; without a failsafe mode every primary fences itself);
 * - etcd_outage_30s_one_replica_write_gap_s: the same outage under a writer on a one-replica
 *   Postgres (`small`), whose primary the failsafe keeps for having no other replica (P7);
 * - lost_sync: acknowledged writes lost over all rounds (promise: 0);
 * - split_brain: rounds where the old primary accepted a direct write after a promotion.
 *
 * The last line is one JSON object; a round that could not run gives null and its error on
 * stderr.
 */
import { startCluster } from '@service-foundry/test-support/cluster';
import { chaosRound, type RoundJson } from '../chaos/rounds.js';

const instance = 'cp-pg';
const lone = 'cp-one';
const outageS = Number(process.env.ETCD_OUTAGE_S ?? 30);

const rounds = [
  { figure: 'router_kill_gap_s', instance, kind: 'kill-process', target: 'router-1', durationS: 10 },
  { figure: 'leader_kill_gap_s', instance, kind: 'kill-process', target: 'scheduler', durationS: 10 },
  { figure: 'etcd_outage_30s_write_gap_s', instance, kind: 'etcd-outage', target: 'etcd', durationS: outageS },
  {
    figure: 'etcd_outage_30s_one_replica_write_gap_s',
    instance: lone,
    kind: 'etcd-outage',
    target: 'etcd',
    durationS: outageS,
  },
] as const;

const cluster = await startCluster(3);
try {
  process.stderr.write(`cluster up; provisioning ${instance} (postgres ha-small, remote-fsync) and ${lone} (small)\n`);
  const created = await cluster.sf(
    'create-service',
    'postgres',
    'ha-small',
    instance,
    '-c',
    JSON.stringify({ durability: 'remote-fsync' }),
  );
  if (created.code !== 0) throw new Error(`${instance}: ${created.stderr || created.stdout}`);
  const createdLone = await cluster.sf('create-service', 'postgres', 'small', lone);
  if (createdLone.code !== 0) throw new Error(`${lone}: ${createdLone.stderr || createdLone.stdout}`);
  const figures: Record<string, number | null> = {};
  const reports: RoundJson[] = [];
  for (const round of rounds) {
    const report = await chaosRound(cluster, [instance, lone], round);
    if (typeof report === 'string') {
      process.stderr.write(`${round.kind} ${round.target}: ERROR ${report}\n`);
      figures[round.figure] = null;
      continue;
    }
    reports.push(report);
    const v = report.verdict;
    figures[round.figure] = Number((v.longestGapMs / 1000).toFixed(2));
    process.stderr.write(
      `${round.instance} ${round.kind} ${round.target}: ${v.acknowledged} acknowledged, ${v.lost.length} lost, longest gap ${figures[round.figure]} s, promoted after ${report.promotedAfterMs ?? '-'} ms\n`,
    );
  }
  const summary = {
    ...figures,
    lost_sync: reports.reduce((sum, r) => sum + r.verdict.lost.length, 0),
    split_brain: reports.filter((r) => r.verdict.oldPrimaryWritesAfterPromotion > 0).length,
    rounds: reports.length,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  await cluster.destroy();
}
