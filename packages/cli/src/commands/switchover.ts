import { ErrorCodes, SfError, type SwitchoverRecord } from '@service-foundry/core';
import type { Command } from '../command.js';
import { BrokerError } from '../errors.js';
import { follow, interruptedExitCode } from '../follow.js';
import { formatSeconds } from '../format.js';
import { instancePath } from '../instance-path.js';
import { printJson, say } from '../output.js';
import { ProgressDisplay } from '../progress-display.js';
import { client } from './services.js';

const pollMs = 100;
/** Stop (40 s at most) + catch-up (20 s) + promotion (60 s), with room to spare. */
const deadlineMs = 3 * 60_000;

/** What each phase means to the operator watching (docs/failover.md#switchover has the state machine). */
function phaseLine(r: SwitchoverRecord): string {
  switch (r.phase) {
    case 'requested':
      return 'waiting for the controller';
    case 'stopping':
      return r.stoppedAt
        ? `old primary stopped; checking replica ${r.to.ordinal} holds everything it wrote`
        : `stopping the old primary (replica ${r.from.ordinal} on ${r.from.node}): no new write is accepted`;
    case 'promoting':
      return `promoting replica ${r.to.ordinal} on ${r.to.node} and switching the route`;
    case 'done':
      return 'done';
    case 'failed':
      return `failed: ${r.message}`;
  }
}

/** `switched pg1 over from replica 0 on node-1 to replica 2 on node-3 (epoch 812): writes through the router paused at most 0.62 s; …` */
export function switchoverSummary(name: string, r: SwitchoverRecord): string {
  const head = `switched ${name} over from replica ${r.from.ordinal} on ${r.from.node} to replica ${r.to.ordinal} on ${r.to.node}`;
  const epoch = r.toEpoch === undefined ? '' : ` (epoch ${r.toEpoch})`;
  const gap = r.gapMs === undefined ? '' : `: writes through the router paused at most ${formatSeconds(r.gapMs, 2)}`;
  return `${head}${epoch}${gap}; the old primary rejoins as a replica`;
}

export const switchover: Command = {
  name: 'switchover',
  summary: 'planned primary change to an in-sync replica (--to ORDINAL|NODE), no acknowledged write lost',
  args: ['INSTANCE'],
  options: {
    to: { type: 'string' },
    'no-wait': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run([name = ''], options) {
    const body: Record<string, unknown> = {};
    if (typeof options.to === 'string') body.to = options.to;
    const broker = await client();
    const path = instancePath(name, '/switchover');
    const { body: asked } = await broker.request<SwitchoverRecord>('POST', path, body).catch((error: unknown) => {
      // The broker's refusal keeps its stable code on the way to the exit message.
      if (error instanceof BrokerError && error.osbError === 'SwitchoverRefused') {
        throw new SfError(ErrorCodes.switchoverRefused, error.message);
      }
      throw error;
    });
    if (!options.json) {
      say(
        `Switching ${name} over from replica ${asked.from.ordinal} on ${asked.from.node} to replica ${asked.to.ordinal} on ${asked.to.node}`,
      );
    }
    if (options['no-wait']) return options.json ? printJson(asked) : say(`Follow it with \`sf service ${name}\``);

    const display = new ProgressDisplay();
    let line: string | undefined;
    const final = await follow(
      async () => {
        const record = await broker.get<SwitchoverRecord>(path);
        const now = phaseLine(record);
        if (now !== line && !options.json && record.phase !== 'done' && record.phase !== 'failed') display.note(now);
        line = now;
        return record.phase === 'done' || record.phase === 'failed' ? record : undefined;
      },
      { what: `the switchover of ${name}`, timeoutMs: deadlineMs, intervalMs: pollMs },
    );
    display.clear();
    if (!final) {
      process.exitCode = interruptedExitCode;
      return say(`Stopped following; the switchover goes on. Follow it with \`sf service ${name}\``);
    }
    if (final.phase === 'failed') process.exitCode = 1;
    if (options.json) return printJson(final);
    if (final.phase === 'failed') {
      return say(`switchover of ${name} failed: ${final.message} [${final.code ?? ErrorCodes.switchoverFailed}]`);
    }
    say(switchoverSummary(name, final));
  },
};
