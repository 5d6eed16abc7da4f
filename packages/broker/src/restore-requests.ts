import { randomUUID } from 'node:crypto';
import {
  backupCodec,
  type InstanceRecord,
  type InstanceSecret,
  isBackupId,
  readRecord,
  readRecords,
  relocationCodec,
} from '@service-foundry/core';
import type { BackupOwner } from './backup-requests.js';
import type { BrokerContext } from './broker-context.js';
import { describeScope, holdsName } from './instance-scope.js';
import { BodyProblems } from './operator-input.js';
import { conflict, notFound } from './osb-errors.js';
import { desiredReplicas } from './params-validation.js';
import { resolvePolicies } from './policies.js';
import { newOperationId } from './random.js';
import { contextName } from './request-checks.js';
import { provisionImage } from './upgrade.js';

export interface RestoreAsk {
  backup: string;
  /** The new instance's name; absent: restore over the instance's own data. */
  as?: string;
}

export function parseRestoreBody(body: unknown): RestoreAsk {
  const problems = new BodyProblems('restore request');
  const fields = problems.fields(body, ['backup', 'as']);
  const { backup, as } = fields;
  if (typeof backup !== 'string' || !isBackupId(backup)) problems.add('backup must be a backup id (see `sf backups`)');
  if (as !== undefined) {
    try {
      // The rule provisioning applies to `context.instance_name`.
      contextName({ instance_name: as }, 'instance_name', '');
    } catch {
      problems.add('as must be an instance name of 1 to 255 printable characters');
    }
  }
  problems.fail();
  return { backup: backup as string, ...(as === undefined ? {} : { as: as as string }) };
}

/**
 * Restores an instance's own backup over its data: the instance stays (same id, route,
 * credentials and keys), every replica stops, the first is refilled from the backup, the
 * others are rebuilt from it (controller/restore.ts). Keys made after the backup have no
 * user in the restored data: the answer says so.
 */
export async function requestRestoreInPlace(
  ctx: BrokerContext,
  owner: BackupOwner,
  backupId: string,
  by: string,
): Promise<InstanceRecord> {
  const { client, keys } = ctx;
  const live = owner.instance;
  if (!live) throw conflict(`instance ${owner.name} was deleted; restore its backup into a new one with --as NAME`);
  const backup = (await readRecord(client, backupCodec, keys.backup(owner.instanceId, backupId)))?.value;
  if (!backup) throw notFound(`instance ${owner.name} has no backup ${backupId} (see \`sf backups ${owner.name}\`)`);
  if (backup.state !== 'completed' || !backup.node) {
    throw conflict(`backup ${backupId} of ${owner.name} is ${backup.state}; only a completed backup can be restored`);
  }
  const instance = live.value;
  if (instance.phase !== 'ready') {
    throw conflict(`instance ${owner.name} is ${instance.phase}; try again when it is ready`);
  }
  if (instance.operation.state === 'in progress') {
    throw conflict(
      `instance ${owner.name} has an operation in progress (${instance.operation.type}); try again when it ends`,
    );
  }
  const relocations = await readRecords(client, relocationCodec, keys.instanceRelocations(instance.id), ctx.log);
  const moving = relocations.find((r) => r.phase !== 'done' && r.phase !== 'failed');
  if (moving) throw conflict(`instance ${owner.name} is being relocated (${moving.phase}); restore it afterwards`);
  const startedAt = new Date().toISOString();
  const next: InstanceRecord = {
    ...instance,
    message: `restoring backup ${backupId} in place: stopping every replica`,
    operation: {
      id: newOperationId('update'),
      type: 'update',
      state: 'in progress',
      description: `restoring backup ${backupId} in place`,
      startedAt,
    },
    restore: { instanceId: instance.id, backupId, node: backup.node, state: 'stopping', inPlace: true },
  };
  const res = await client
    .if(keys.instance(instance.id), 'Mod', '==', live.modRevision)
    .then(client.put(keys.instance(instance.id)).value(JSON.stringify(next)))
    .commit();
  if (!res.succeeded) throw conflict(`instance ${owner.name} changed meanwhile; try again`);
  await ctx.events.record(
    'restore-requested',
    `backup ${backupId} restored in place by ${by}: every replica stops, keys made after the backup stop working`,
    { instanceId: instance.id },
  );
  return next;
}

/**
 * Creates a new instance from a completed backup, the way provisioning creates one (same
 * service and plan, the source's parameters when it still exists, a new id and router
 * port, one transaction through InstanceStore) plus `restore`, which tells the controller
 * to seed replica 0 from the backup before giving out roles. The restored data holds the
 * source's users, so the new instance gets a copy of the source's credentials.
 */
export async function requestRestore(
  ctx: BrokerContext,
  owner: BackupOwner,
  backupId: string,
  name: string,
  by: string,
): Promise<InstanceRecord> {
  const { client, keys } = ctx;
  const backup = (await readRecord(client, backupCodec, keys.backup(owner.instanceId, backupId)))?.value;
  if (!backup) throw notFound(`instance ${owner.name} has no backup ${backupId} (see \`sf backups ${owner.name}\`)`);
  if (backup.state !== 'completed' || !backup.node) {
    throw conflict(`backup ${backupId} of ${owner.name} is ${backup.state}; only a completed backup can be restored`);
  }
  const instances = await ctx.instances.list();
  // A restored instance is the operators' (no platform knows its id): its name is unique there.
  const taken = instances.find((i) => holdsName(i.value, name, undefined) || i.value.id === name);
  if (taken) {
    throw conflict(`${JSON.stringify(name)} is taken in ${describeScope(undefined)} (instance ${taken.value.id})`);
  }

  const entry = ctx.catalog.byServiceName(backup.serviceName);
  const osbPlan = entry?.osb.plans.find((p) => p.name === backup.planName);
  const plan = entry && osbPlan ? ctx.plans.find(entry.osb.id, osbPlan.id) : undefined;
  if (!plan) {
    throw conflict(
      `the catalog no longer offers ${backup.serviceName}/${backup.planName}; backup ${backupId} cannot be restored`,
    );
  }
  const secret = await ctx.instances.secret(owner.instanceId);
  if (!secret) {
    throw conflict(`the credentials of instance ${owner.name} are gone; its backups cannot be restored`);
  }
  // A live source's parameters were validated when it was created or updated; else the plan's defaults.
  const parameters = owner.instance?.value.parameters ?? {};
  const replicas = desiredReplicas(plan, parameters);
  const service = plan.entry.osb.name;
  const startedAt = new Date().toISOString();
  const outcome = await ctx.instances.create(
    {
      id: randomUUID(),
      name,
      serviceId: plan.entry.osb.id,
      planId: plan.plan.id,
      serviceName: service,
      planName: plan.plan.name,
      parameters,
      replicas,
      resources: { ...plan.sizing.resources },
      context: { platform: 'sf', instance_name: name },
      createdAt: startedAt,
      phase: 'provisioning',
      message: `waiting for placement; then copying backup ${backupId}`,
      operation: {
        id: newOperationId('provision'),
        type: 'provision',
        state: 'in progress',
        description: `restoring backup ${backupId} of ${owner.name} into ${replicas} ${service} replica(s)`,
        startedAt,
      },
      ...resolvePolicies(plan.sizing, parameters),
      // A new instance runs the plan's current image, whatever the backup's source ran.
      ...(plan.plan.maintenance_info ? { maintenanceVersion: plan.plan.maintenance_info.version } : {}),
      ...provisionImage(plan),
      restore: { instanceId: owner.instanceId, backupId, node: backup.node, state: 'copying' },
    },
    // The source's current passwords (a backup from before a rotation holds older ones: each
    // server takes these on as it starts), without a rotation of the source under way.
    withoutPrevious(secret),
  );
  // A fresh uuid cannot name an existing instance; if it ever did, nothing was written.
  if (!outcome.created) throw conflict('the new instance id is taken; retry the request');
  await ctx.events.record(
    'restore-requested',
    `restoring backup ${backupId} of "${owner.name}" as "${name}" (requested by ${by})`,
    { instanceId: outcome.record.id, node: backup.node },
  );
  return outcome.record;
}

function withoutPrevious(secret: InstanceSecret): InstanceSecret {
  const { previous: _rotating, ...current } = secret;
  return current;
}
