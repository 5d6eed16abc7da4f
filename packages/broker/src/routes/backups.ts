import { backupCodec, isBackupId, readRecord } from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import { backupOwner, backupView, listBackups, requestBackup } from '../backup-requests.js';
import type { BrokerContext } from '../broker-context.js';
import { requireInstance } from '../instance-lookup.js';
import { BodyProblems, operatorOf } from '../operator-input.js';
import { OperatorViews } from '../operator-views.js';
import { badRequest, notFound } from '../osb-errors.js';
import { parseRestoreBody, requestRestore, requestRestoreInPlace } from '../restore-requests.js';

type InstanceParams = { Params: { id: string } };

/**
 * Backups (`sf backup`, `sf backups`) and restores (`sf restore`). The broker records
 * requests; the agent of the primary's node takes a backup into its store, and the
 * controller seeds a restored instance's first replica from it. Backups outlive their
 * instance, so the read routes also answer for a deleted instance's id.
 */
export function backupRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const views = new OperatorViews(ctx);

  app.post<InstanceParams>('/sf/v1/instances/:id/backups', async (request, reply) => {
    const problems = new BodyProblems('backup request');
    problems.fields(request.body, []);
    problems.fail();
    const by = operatorOf(request);
    const instance = await requireInstance(ctx, request.params.id);
    const record = await requestBackup(ctx, instance.value, by);
    request.log.info({ instanceId: record.instanceId, backupId: record.id, by }, 'backup requested');
    return reply.code(202).send(backupView(ctx, record));
  });

  app.get<InstanceParams>('/sf/v1/instances/:id/backups', async (request) => {
    const owner = await backupOwner(ctx, request.params.id);
    const backups = await listBackups(ctx, owner.instanceId);
    return { backups: backups.map((b) => backupView(ctx, b)) };
  });

  app.get<{ Params: { id: string; backup: string } }>('/sf/v1/instances/:id/backups/:backup', async (request) => {
    const backupId = request.params.backup;
    if (!isBackupId(backupId)) throw badRequest(`${JSON.stringify(backupId.slice(0, 100))} is not a backup id`);
    const owner = await backupOwner(ctx, request.params.id);
    const record = await readRecord(ctx.client, backupCodec, ctx.keys.backup(owner.instanceId, backupId));
    if (!record) throw notFound(`instance ${owner.name} has no backup ${backupId}`);
    return backupView(ctx, record.value);
  });

  app.post<InstanceParams>('/sf/v1/instances/:id/restore', async (request, reply) => {
    const ask = parseRestoreBody(request.body);
    const by = operatorOf(request);
    const owner = await backupOwner(ctx, request.params.id);
    const record =
      ask.as === undefined
        ? await requestRestoreInPlace(ctx, owner, ask.backup, by)
        : await requestRestore(ctx, owner, ask.backup, ask.as, by);
    request.log.info(
      { instanceId: record.id, name: record.name, from: owner.instanceId, backupId: ask.backup, by },
      'restore requested',
    );
    return reply.code(202).send(await views.instance(record.id));
  });
}
