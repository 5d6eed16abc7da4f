import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { BackupView } from '@service-foundry/api';
import {
  type BackupRecord,
  backupCodec,
  type CatalogEntry,
  type InstanceRecord,
  isBackupId,
  isKeySegment,
  json,
  readPrefix,
  type Versioned,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { findInstance, instanceNotFound } from './instance-lookup.js';
import { concurrencyError, conflict } from './osb-errors.js';

/** Transactions lost to concurrent writers before the request is given up. */
const maxAttempts = 5;

/** `b-` + UTC `yyyymmddThhmmss` + `-` + 6 random hex digits: sorts by time, unique enough to never collide. */
function newBackupId(now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d{3}Z$/, '')
    .replace(/[-:]/g, '');
  const id = `b-${stamp}-${randomBytes(3).toString('hex')}`;
  if (!isBackupId(id)) throw new TypeError(`made an invalid backup id ${id}`);
  return id;
}

/** The end of the key range holding every key that starts with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

/** Newest first: ids start with their UTC time, so ties on `requestedAt` still sort. */
function newestFirst(a: BackupRecord, b: BackupRecord): number {
  return b.requestedAt.localeCompare(a.requestedAt) || b.id.localeCompare(a.id);
}

async function readBackups(ctx: BrokerContext, instanceId: string) {
  return readPrefix(ctx.client, backupCodec, ctx.keys.instanceBackups(instanceId));
}

export async function listBackups(ctx: BrokerContext, instanceId: string): Promise<BackupRecord[]> {
  return [...(await readBackups(ctx, instanceId)).items.values()].map((b) => b.value).sort(newestFirst);
}

/** Whose backups an operator means. Backups outlive their instance, so a deleted one counts too. */
export interface BackupOwner {
  instanceId: string;
  name: string;
  /** The live instance, when it still exists. */
  instance?: Versioned<InstanceRecord>;
}

/**
 * A live instance by id or name; else an instance id that still has backups; else the
 * name a deleted instance had, when only one deleted instance with backups had it.
 */
export async function backupOwner(ctx: BrokerContext, idOrName: string): Promise<BackupOwner> {
  const live = await findInstance(ctx, idOrName);
  if (live) return { instanceId: live.value.id, name: live.value.name, instance: live };
  if (isKeySegment(idOrName)) {
    const own = await listBackups(ctx, idOrName);
    if (own[0]) return { instanceId: idOrName, name: own[0].instanceName };
  }
  const all = await readPrefix(ctx.client, backupCodec, ctx.keys.backups());
  const ids = new Set(
    [...all.items.values()].filter((b) => b.value.instanceName === idOrName).map((b) => b.value.instanceId),
  );
  const [only, ...others] = [...ids].sort();
  if (!only) throw instanceNotFound(idOrName);
  if (others.length) {
    throw conflict(
      `several deleted instances named ${JSON.stringify(idOrName)} have backups (ids ${[only, ...others].join(', ')}); name one by its id`,
    );
  }
  return { instanceId: only, name: idOrName };
}

/** The program the service's backup hook runs (`pg_basebackup`), looking through `sh -c`. */
function hookProgram(entry: CatalogEntry | undefined): string | undefined {
  const prepare = entry?.backup?.prepare;
  if (!prepare?.[0]) return undefined;
  const program = basename(prepare[0]);
  if (['sh', 'bash', 'dash'].includes(program) && prepare[1] === '-c' && prepare[2]) {
    const first = prepare[2].trim().split(/\s+/)[0];
    return first ? basename(first) : program;
  }
  return program;
}

export function backupView(ctx: BrokerContext, record: BackupRecord): BackupView {
  const hook = record.method === 'hook' ? hookProgram(ctx.catalog.byServiceName(record.serviceName)) : undefined;
  return hook ? { ...record, hook } : record;
}

/**
 * Records a backup request for the agent of the primary's node. One backup of an instance
 * at a time: the transaction compares every backup key of the instance against the
 * listing it checked, so two concurrent requests cannot both start one.
 */
export async function requestBackup(ctx: BrokerContext, instance: InstanceRecord, by: string): Promise<BackupRecord> {
  const { client, keys } = ctx;
  if (instance.phase !== 'ready') throw conflict(`instance ${instance.name} is ${instance.phase}`);
  const prefix = keys.instanceBackups(instance.id);
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const listed = await readBackups(ctx, instance.id);
    const active = [...listed.items.values()]
      .map((b) => b.value)
      .filter((b) => b.state === 'requested' || b.state === 'running')
      .sort(newestFirst)[0];
    if (active) throw conflict(`backup ${active.id} of ${instance.name} is ${active.state}; wait until it finishes`);
    const now = new Date();
    const record: BackupRecord = {
      id: newBackupId(now),
      instanceId: instance.id,
      instanceName: instance.name,
      serviceName: instance.serviceName,
      planName: instance.planName,
      state: 'requested',
      message: 'requested',
      requestedBy: by,
      requestedAt: now.toISOString(),
    };
    const key = keys.backup(instance.id, record.id);
    const res = await client.kv.txn({
      compare: [
        { key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 },
        {
          key: Buffer.from(prefix),
          range_end: prefixEnd(prefix),
          target: 'Mod',
          result: 'Less',
          mod_revision: String(BigInt(listed.revision) + 1n),
        },
      ],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(json(record)) } }],
      failure: [],
    });
    if (res.succeeded) {
      await ctx.events.record('backup-requested', `backup ${record.id} of "${instance.name}" requested by ${by}`, {
        instanceId: instance.id,
      });
      return record;
    }
  }
  throw concurrencyError(`the backups of ${instance.name} are changing too often; retry the request`);
}
