import type { MaintenanceLevel, UpgradeStarted, UpgradeView } from '@service-foundry/api';
import type { BrokerClient } from '../broker-client.js';
import type { Command, OptionValues } from '../command.js';
import { BrokerError, UsageError } from '../errors.js';
import { instancePath } from '../instance-path.js';
import { waitForOperation, watchOperation } from '../operation-wait.js';
import { printTable, say } from '../output.js';
import { client } from './services.js';

/**
 * One instance's upgrade takes a restart per replica (each catching up before the next)
 * and a switchover: far longer than a switchover alone, shorter than a clone.
 */
const upgradeTimeoutMs = 30 * 60_000;

/** A count option: decimal digits only, from 1 to `max` (no `1e3`, `0x10` or `2.0`). */
export function countOption(options: OptionValues, name: string, fallback: number, max: number): number {
  const raw = options[name];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^[0-9]{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= 1 && value <= max)) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function level(l: MaintenanceLevel): string {
  return `maintenance version ${l.version ?? '(unrecorded)'}, image ${l.image ?? '(unrecorded)'}`;
}

/** What clients of the instance will notice, said before anything starts. */
export function interruptionLine(view: UpgradeView): string {
  return view.interruption === 'switchover'
    ? "one switchover's write gap: replicas restart one at a time, each catching up before the next, then a switchover moves the primary"
    : 'a restart: the instance is unavailable while its primary restarts on the new image (same volume)';
}

/** The upgrade started (or already running for the same target); `operation: null`: nothing to do. */
function startUpgrade(broker: BrokerClient, name: string): Promise<UpgradeStarted> {
  return broker.request<UpgradeStarted>('POST', instancePath(name, '/upgrade')).then((r) => r.body);
}

export const upgradeService: Command = {
  name: 'upgrade-service',
  summary: "move an instance onto its plan's current maintenance version and image (rolling; one switchover)",
  args: ['NAME'],
  options: { 'no-wait': { type: 'boolean' } },
  async run([name = ''], options) {
    const broker = await client();
    const view = await broker.get<UpgradeView>(instancePath(name, '/upgrade'));
    if (view.reason === null) {
      return say(`Nothing to upgrade: ${name} runs ${level(view.running)}, what its plan offers.`);
    }
    say(`Upgrading ${name} (${view.service} ${view.plan}): ${view.reason}`);
    say(`  runs now:  ${level(view.running)}`);
    say(`  moves to:  ${level(view.offered)}`);
    say(`  expect:    ${interruptionLine(view)}`);
    const started = await startUpgrade(broker, name);
    if (started.operation === null) return say(`Nothing to upgrade any more: ${name} runs ${level(started.running)}.`);
    if (options['no-wait']) return say(`Follow it with \`sf service ${name}\``);
    const state = await waitForOperation(broker, view.instanceId, `upgrade ${name}`, upgradeTimeoutMs);
    if (state !== 'succeeded') {
      process.exitCode = 1;
      return say(`Upgrade of ${name} ${state === 'gone' ? 'ended: the instance was deleted' : state}.`);
    }
    say(`OK: ${name} runs ${level(view.offered)}.`);
  },
};

type Outcome = { ok: true } | { ok: false; why: string };

/** Starts one upgrade and follows it to its end, one line per change of its description. */
async function upgradeOne(broker: BrokerClient, view: UpgradeView): Promise<Outcome> {
  const name = view.name;
  let started: UpgradeStarted;
  try {
    started = await startUpgrade(broker, view.instanceId);
  } catch (error) {
    const why =
      error instanceof BrokerError && error.status !== 0 ? `refused: ${error.message}` : (error as Error).message;
    return { ok: false, why };
  }
  if (started.operation === null) {
    say(`${name}: nothing to upgrade any more`);
    return { ok: true };
  }
  say(`${name}: started (${view.reason}); expect ${interruptionLine(view)}`);
  const final = await watchOperation(broker, view.instanceId, `the upgrade of ${name}`, upgradeTimeoutMs, (op) =>
    say(`${name}: ${op.state}${op.description ? ` — ${op.description}` : ''}`),
  ).catch((error: unknown) => ({ state: 'unknown', description: (error as Error).message }));
  if (final === 'gone') return { ok: false, why: 'the instance was deleted during its upgrade' };
  return final.state === 'succeeded' ? { ok: true } : { ok: false, why: final.description || final.state };
}

/**
 * Runs `views` with at most `limit` in flight; once one fails, nothing new starts and the
 * ones running are followed to their end. Returns the first failure.
 */
async function rollOut(
  broker: BrokerClient,
  views: readonly UpgradeView[],
  limit: number,
  done: UpgradeView[],
): Promise<{ view: UpgradeView; why: string } | undefined> {
  let next = 0;
  let failed: { view: UpgradeView; why: string } | undefined;
  const worker = async () => {
    while (!failed && next < views.length) {
      const view = views[next++] as UpgradeView;
      const outcome = await upgradeOne(broker, view);
      if (outcome.ok) done.push(view);
      else failed ??= { view, why: outcome.why };
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, views.length) }, worker));
  return failed;
}

export const upgradeAll: Command = {
  name: 'upgrade-all',
  summary:
    "upgrade every instance not on its plan's current version and image: canaries one at a time, then the rest (--max-in-flight)",
  args: [],
  options: { canaries: { type: 'string' }, 'max-in-flight': { type: 'string' } },
  async run(_args, options) {
    // Checked before anything is asked of the broker: bad input changes nothing.
    const canaries = countOption(options, 'canaries', 1, 1000);
    const maxInFlight = countOption(options, 'max-in-flight', 1, 100);
    const broker = await client();
    const views = await broker.get<UpgradeView[]>('/sf/v1/upgrades');
    if (views.length === 0) {
      return say("Nothing to upgrade: every ready instance runs its plan's current maintenance version and image.");
    }
    const first = views.slice(0, canaries);
    const rest = views.slice(canaries);
    say(
      `${views.length} instance(s) to upgrade: ${first.length} canary(ies) one at a time, then ${rest.length} more, at most ${maxInFlight} at a time`,
    );
    printTable(
      ['name', 'service', 'plan', 'from', 'to', 'interruption'],
      views.map((v) => [
        v.name,
        v.service,
        v.plan,
        v.running.version ?? '(unrecorded)',
        v.offered.version ?? v.offered.image,
        v.interruption === 'switchover' ? "one switchover's write gap" : 'a restart',
      ]),
    );
    const done: UpgradeView[] = [];
    const canaryFailure = await rollOut(broker, first, 1, done);
    const failure = canaryFailure ?? (await rollOut(broker, rest, maxInFlight, done));
    if (failure) {
      process.exitCode = 1;
      const what = canaryFailure ? 'canary' : 'upgrade';
      say(`${what} ${failure.view.name} failed: ${failure.why}`);
      return say(
        `Stopped after ${done.length} of ${views.length} upgraded; nothing new was started. Fix the cause, then run \`sf upgrade-all\` again: upgraded instances are skipped.`,
      );
    }
    say(`OK: ${done.length} of ${views.length} instance(s) upgraded.`);
  },
};
