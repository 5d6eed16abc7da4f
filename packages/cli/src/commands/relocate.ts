import type { RelocationsView } from '@service-foundry/api';
import type { RelocationRecord } from '@service-foundry/core';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { follow, interruptedExitCode } from '../follow.js';
import { formatBytes, formatRate, formatSeconds } from '../format.js';
import { instancePath } from '../instance-path.js';
import { say } from '../output.js';
import { ProgressDisplay } from '../progress-display.js';
import { client } from './services.js';

const pollMs = 250;
const deadlineMs = 30 * 60_000;

/** What each phase means to the operator watching (docs/volumes.md has the state machine). */
function phaseLine(r: RelocationRecord): string {
  switch (r.phase) {
    case 'requested':
      return 'waiting for the controller';
    case 'copying':
      return `copying replica ${r.ordinal} to ${r.to ?? 'the new node'} while it runs`;
    case 'stopping':
      return `stopping the source on ${r.from}`;
    case 'final':
      return 'copying the final delta';
    case 'switching':
      return `switching to ${r.to ?? 'the new node'}`;
    case 'done':
      return 'done';
    case 'failed':
      return `failed: ${r.message}`;
  }
}

/** Transfers draw a bar only in the phases that copy. */
const transferLabel: Partial<Record<RelocationRecord['phase'], string>> = { copying: 'pre-copy', final: 'final delta' };

/** `relocated pg1 replica 0 from node-1 to node-2: pre-copy 1.07 GB in 4.6 s (233 MB/s), final delta …, downtime 0.84 s` */
export function relocationSummary(name: string, r: RelocationRecord): string {
  const parts: string[] = [];
  if (r.precopy) {
    parts.push(
      `pre-copy ${formatBytes(r.precopy.bytes)} in ${formatSeconds(r.precopy.durationMs)} (${formatRate(r.precopy.mbPerSecond)})`,
    );
  }
  if (r.final) parts.push(`final delta ${formatBytes(r.final.bytes)} in ${formatSeconds(r.final.durationMs)}`);
  if (r.downtimeMs !== undefined) parts.push(`downtime ${formatSeconds(r.downtimeMs, 2)}`);
  const head = `relocated ${name} replica ${r.ordinal} from ${r.from} to ${r.to ?? '?'}`;
  return parts.length ? `${head}: ${parts.join(', ')}` : head;
}

export const relocate: Command = {
  name: 'relocate',
  summary: 'move a replica (default: the primary) and its data to another node, with a short stop',
  args: ['INSTANCE'],
  options: {
    to: { type: 'string' },
    ordinal: { type: 'string' },
    'keep-source': { type: 'boolean' },
    'no-wait': { type: 'boolean' },
  },
  async run([name = ''], options) {
    const body: Record<string, unknown> = {};
    if (options.ordinal !== undefined) body.ordinal = intOption(options, 'ordinal', 0, 0, 999);
    if (typeof options.to === 'string') body.to = options.to;
    if (options['keep-source']) body.keep_source = true;
    const broker = await client();
    const { body: asked } = await broker.request<RelocationRecord>('POST', instancePath(name, '/relocate'), body);
    say(
      `Relocating ${name} replica ${asked.ordinal} from ${asked.from} to ${asked.to ?? 'a node the controller picks'}`,
    );
    if (options['no-wait']) return say(`Follow it with \`sf service ${name}\``);

    const display = new ProgressDisplay();
    let phase: RelocationRecord['phase'] | undefined;
    const path = `/sf/v1/instances/${asked.instanceId}/relocations`;
    const final = await follow(
      async () => {
        const view = await broker.get<RelocationsView>(path);
        const record = view.relocations.find((r) => r.ordinal === asked.ordinal);
        if (!record) throw new UsageError(`the relocation of ${name} replica ${asked.ordinal} is gone`);
        if (record.phase !== phase) {
          phase = record.phase;
          if (record.phase !== 'done' && record.phase !== 'failed') display.note(phaseLine(record));
        }
        if (record.phase === 'done' || record.phase === 'failed') return record;
        const label = transferLabel[record.phase];
        const transfer = view.transfers.find(
          (t) => t.ordinal === record.ordinal && t.node === record.to && t.state === 'copying' && t.progress,
        );
        if (label && transfer?.progress) display.bar({ label, ...transfer.progress });
        return undefined;
      },
      { what: `the relocation of ${name}`, timeoutMs: deadlineMs, intervalMs: pollMs },
    );
    display.clear();
    if (!final) {
      process.exitCode = interruptedExitCode;
      return say(`Stopped following; the relocation keeps running. Follow it with \`sf service ${name}\``);
    }
    if (final.phase === 'failed') {
      process.exitCode = 1;
      return say(`relocation of ${name} replica ${final.ordinal} failed: ${final.message}`);
    }
    say(relocationSummary(name, final));
  },
};
