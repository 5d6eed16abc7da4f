import type { BackupList, BackupView, InstanceDetail, RelocationsView } from '@service-foundry/api';
import type { BackupRecord } from '@service-foundry/core';
import type { BrokerClient } from '../broker-client.js';
import type { Command } from '../command.js';
import { follow, interruptedExitCode } from '../follow.js';
import { formatBytes, formatSeconds } from '../format.js';
import { instancePath } from '../instance-path.js';
import { printJson, printTable, say } from '../output.js';
import { ProgressDisplay } from '../progress-display.js';
import { client } from './services.js';

const pollMs = 250;
const deadlineMs = 30 * 60_000;

/** `2025-01-02 03:04:05Z`: seconds are enough in a table. */
function shortTime(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

function methodOf(b: BackupView): string {
  if (b.method === 'hook') return b.hook ? `hook: ${b.hook}` : 'hook';
  if (b.method === 'stopped') return 'copied while stopped';
  return '-';
}

/** `backup b-… of pg1 completed: 48.2 MB, 1203 files in 1.2 s (hook: pg_basebackup) on node-2` */
export function backupSummary(b: BackupView): string {
  const f = b.figures;
  const figures = f ? `: ${formatBytes(f.bytes)}, ${f.files} files in ${formatSeconds(f.durationMs)}` : '';
  const method = b.method ? ` (${methodOf(b)})` : '';
  return `backup ${b.id} of ${b.instanceName} completed${figures}${method}${b.node ? ` on ${b.node}` : ''}`;
}

export const backup: Command = {
  name: 'backup',
  summary: "back up an instance's data into the store of its primary's node",
  args: ['INSTANCE'],
  options: { 'no-wait': { type: 'boolean' } },
  async run([name = ''], options) {
    const broker = await client();
    const { body: asked } = await broker.request<BackupView>('POST', `${instancePath(name)}/backups`, {});
    say(`Backing up ${asked.instanceName} as ${asked.id}`);
    if (options['no-wait']) return say(`Follow it with \`sf backups ${name}\``);

    const display = new ProgressDisplay();
    let state: BackupRecord['state'] | undefined;
    const final = await follow(
      async () => {
        const b = await broker.get<BackupView>(`/sf/v1/instances/${asked.instanceId}/backups/${asked.id}`);
        if (b.state !== state) {
          state = b.state;
          if (b.state === 'requested') display.note('waiting for the agent of the primary');
          if (b.state === 'running')
            display.note(`taking the backup on ${b.node ?? 'the primary'}${b.method ? ` (${methodOf(b)})` : ''}`);
        }
        if (b.state === 'completed' || b.state === 'failed') return b;
        if (b.progress) display.bar({ label: 'backup', ...b.progress });
        return undefined;
      },
      { what: `backup ${asked.id}`, timeoutMs: deadlineMs, intervalMs: pollMs },
    );
    display.clear();
    if (!final) {
      process.exitCode = interruptedExitCode;
      return say(`Stopped following; the backup keeps running. See \`sf backups ${name}\``);
    }
    if (final.state === 'failed') {
      process.exitCode = 1;
      return say(`backup ${final.id} of ${final.instanceName} failed: ${final.message}`);
    }
    say(backupSummary(final));
  },
};

export const backups: Command = {
  name: 'backups',
  summary: 'list the backups of an instance (also of a deleted one, by its id)',
  args: ['INSTANCE'],
  options: { json: { type: 'boolean' } },
  async run([name = ''], options) {
    const { backups: all } = await (await client()).get<BackupList>(`${instancePath(name)}/backups`);
    if (options.json) return printJson(all);
    printTable(
      ['id', 'state', 'taken', 'node', 'method', 'size', 'files', 'duration'],
      all.map((b) => [
        b.id,
        b.state,
        shortTime(b.completedAt ?? b.startedAt ?? b.requestedAt),
        b.node ?? '-',
        methodOf(b),
        b.figures ? formatBytes(b.figures.bytes) : '-',
        b.figures?.files ?? '-',
        b.figures ? formatSeconds(b.figures.durationMs) : '-',
      ]),
    );
  },
};

/** A new instance is done when ready or failed; an in-place restore when its update operation ended. */
function finished(view: InstanceDetail): boolean {
  if (view.restore?.inPlace) return view.operation.state !== 'in progress';
  return view.phase === 'ready' || view.phase === 'failed';
}

/** Follows the restore until it is done, drawing the copy of the backup into the receiving replica. */
async function followRestore(broker: BrokerClient, created: InstanceDetail): Promise<InstanceDetail | undefined> {
  const display = new ProgressDisplay();
  let shown = '';
  const final = await follow(
    async () => {
      const view = await broker.get<InstanceDetail>(`/sf/v1/instances/${created.id}`);
      const copying = view.restore?.state === 'copying';
      const line = copying ? `copying backup ${view.restore?.backupId} from ${view.restore?.node}` : view.message;
      if (line && line !== shown) {
        shown = line;
        if (!finished(view)) display.note(line);
      }
      if (finished(view)) return view;
      if (copying) {
        const { transfers } = await broker.get<RelocationsView>(`/sf/v1/instances/${created.id}/relocations`);
        const ordinal = view.restore?.ordinal ?? 0;
        const transfer = transfers.find((t) => t.ordinal === ordinal && t.state === 'copying' && t.progress);
        if (transfer?.progress) display.bar({ label: 'restore', ...transfer.progress });
      }
      return undefined;
    },
    { what: `the restore into ${created.name}`, timeoutMs: deadlineMs, intervalMs: pollMs },
  );
  display.clear();
  return final;
}

export const restore: Command = {
  name: 'restore',
  summary: 'restore a backup over the instance, or into a new instance (--as NEW)',
  args: ['INSTANCE', 'BACKUP'],
  options: { as: { type: 'string' }, 'no-wait': { type: 'boolean' } },
  async run([name = '', backupId = ''], options) {
    const broker = await client();
    const body = { backup: backupId, ...(typeof options.as === 'string' ? { as: options.as } : {}) };
    const created = (await broker.request<InstanceDetail>('POST', `${instancePath(name)}/restore`, body)).body;
    const inPlace = created.restore?.inPlace === true;
    say(
      inPlace
        ? `Restoring backup ${backupId} over ${name}: every replica stops until the copy is in place; keys made after the backup stop working`
        : `Restoring backup ${backupId} of ${name} as ${created.name} (id ${created.id})`,
    );
    if (options['no-wait']) return say(`Follow it with \`sf service ${created.name}\``);
    const final = await followRestore(broker, created);
    if (!final) {
      process.exitCode = interruptedExitCode;
      return say(`Stopped following; the restore keeps running. Follow it with \`sf service ${created.name}\``);
    }
    const failed = inPlace ? final.operation.state === 'failed' : final.phase === 'failed';
    const where = inPlace ? 'in place' : `as ${created.name}`;
    if (failed) {
      process.exitCode = 1;
      return say(`restore of backup ${backupId} of ${name} ${where} failed: ${final.message}`);
    }
    say(`restored backup ${backupId} of ${name} ${where} (${final.phase})`);
  },
};
