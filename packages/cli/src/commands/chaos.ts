import { type FaultKind, faultKinds } from '../chaos/faults.js';
import { type RoundResult, runRound } from '../chaos/round.js';
import { readClusterFile } from '../cluster/cluster-file.js';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { printJson, printTable, say } from '../output.js';
import { stateDir } from '../target.js';
import { client } from './services.js';

function seconds(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(2)} s`;
}

function summary(results: RoundResult[]): void {
  printTable(
    ['round', 'fault', 'promoted after', 'longest gap', 'acked', 'lost', 'in doubt', 'old primary writes', 'verdict'],
    results.map((r, i) => [
      i + 1,
      r.fault,
      seconds(r.promotedAfterMs),
      seconds(r.verdict.longestGapMs),
      r.verdict.acknowledged,
      r.verdict.lost.length,
      r.verdict.inDoubt,
      r.verdict.oldPrimaryWritesAfterPromotion,
      r.verdict.promiseKept ? 'kept' : `BROKEN: ${r.verdict.broken.join('; ')}`,
    ]),
  );
}

export const chaos: Command = {
  name: 'chaos',
  summary: 'rehearse a failure on an instance: workload, fault, heal, read back, verdict',
  args: ['SERVICE_INSTANCE'],
  options: {
    fault: { type: 'string' },
    target: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run([instance], options) {
    const fault = options.fault as FaultKind | undefined;
    if (!fault || !faultKinds.includes(fault)) {
      throw new UsageError(`--fault is one of ${faultKinds.join(', ')}`);
    }
    const target =
      typeof options.target === 'string'
        ? options.target
        : fault === 'kill-process'
          ? ''
          : fault === 'etcd-outage'
            ? 'etcd'
            : 'primary';
    if (fault === 'kill-process' && !target)
      throw new UsageError('kill-process needs --target PROCESS (e.g. router-1)');
    const durationMs = intOption(options, 'duration', 10, 1, 3600) * 1000;
    const rounds = intOption(options, 'rounds', 1, 1, 1000);
    const dir = stateDir();
    const cluster = await readClusterFile(dir);
    const broker = await client();
    const log = options.json ? () => undefined : (line: string) => say(`  ${line}`);
    const results: RoundResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      if (!options.json) say(`Round ${round}/${rounds}: ${fault} on ${instance} (${target}), ${durationMs / 1000} s`);
      const result = await runRound(
        { broker, local: cluster ? { stateDir: dir, cluster } : undefined },
        { instance: instance ?? '', fault, target, durationMs, warmUpWrites: 20, recoveryTimeoutMs: 180_000 },
        log,
      );
      results.push(result);
      if (!options.json) {
        say(
          `  ${result.verdict.promiseKept ? 'promise kept' : 'PROMISE BROKEN'}: ${result.verdict.acknowledged} acknowledged, ${result.verdict.lost.length} lost, longest write gap ${seconds(result.verdict.longestGapMs)}`,
        );
      }
    }
    if (options.json) printJson(results);
    else summary(results);
    if (results.some((r) => !r.verdict.promiseKept)) process.exitCode = 1;
  },
};
