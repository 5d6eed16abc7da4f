import {
  type AssignmentRecord,
  backupVolumeSource,
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Keyspace,
  type Logger,
  type TransferStatusRecord,
  type Versioned,
} from '@service-foundry/core';
import type { InstanceView } from './topology.js';

export interface RestoreContext {
  client: Etcd3;
  keys: Keyspace;
  events: EventLog;
  log: Logger;
  transferOf: (instanceId: string, ordinal: number, node: string) => TransferStatusRecord | undefined;
}

/**
 * A restored instance (`sf restore … --as NEW`) before anything runs: the first replica's
 * assignment is seeded from the backup on the node that holds it; once the copy is in its
 * volume, `restore.state` becomes `copied` and the instance converges as any other, that
 * replica first (topology.ts). Nothing runs on a half-copied volume: a failed copy fails
 * the provisioning.
 *
 * | state   | condition                                     | action                                             |
 * |---------|-----------------------------------------------|----------------------------------------------------|
 * | copying | no live placed replica with an assignment yet | wait                                               |
 * | copying | its assignment has no seed                    | seed it from `backup.<source>.<backup>`; record the ordinal |
 * | copying | the copy failed for good                      | instance failed                                    |
 * | copying | round 1 copied                                | drop the seed, `restore.state` copied (one txn)    |
 */
export async function restoreStep(
  ctx: RestoreContext,
  instance: Versioned<InstanceRecord>,
  view: InstanceView,
): Promise<void> {
  const restore = instance.value.restore;
  if (restore?.state !== 'copying' || restore.inPlace) return;
  const id = instance.value.id;
  const placement = view.placements.find(
    (p) =>
      (restore.ordinal === undefined || p.ordinal === restore.ordinal) &&
      view.liveNodes.has(p.node) &&
      view.assignments.has(p.ordinal),
  );
  if (!placement) return;
  const assignment = view.assignments.get(placement.ordinal) as Versioned<AssignmentRecord>;
  const instanceKey = ctx.keys.instance(id);
  if (!assignment.value.seed || restore.ordinal === undefined) {
    const seeded: AssignmentRecord = {
      ...assignment.value,
      seed: {
        from: { node: restore.node, volume: backupVolumeSource(restore.instanceId, restore.backupId) },
        round: 1,
      },
    };
    const next: InstanceRecord = {
      ...instance.value,
      restore: { ...restore, ordinal: placement.ordinal },
      message: `restoring backup ${restore.backupId} onto ${placement.node}`,
    };
    const res = await ctx.client
      .if(assignment.key, 'Mod', '==', assignment.modRevision)
      .and(instanceKey, 'Mod', '==', instance.modRevision)
      .then(ctx.client.put(assignment.key).value(json(seeded)), ctx.client.put(instanceKey).value(json(next)))
      .commit();
    if (res.succeeded) {
      await ctx.events.record(
        'restore-copying',
        `copying backup ${restore.backupId} from ${restore.node} to ${placement.node}`,
        {
          instanceId: id,
          node: placement.node,
        },
      );
    }
    return;
  }
  const transfer = ctx.transferOf(id, placement.ordinal, placement.node);
  if (transfer?.round !== 1) return;
  if (transfer.state === 'failed' && !transfer.willRetry) {
    const description = `restoring backup ${restore.backupId} failed: ${transfer.message}`;
    const failed: InstanceRecord = {
      ...instance.value,
      phase: 'failed',
      message: description,
      operation: { ...instance.value.operation, state: 'failed', description },
    };
    const res = await ctx.client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .then(ctx.client.put(instanceKey).value(json(failed)))
      .commit();
    if (res.succeeded) {
      ctx.log.error({ instanceId: id }, description);
      await ctx.events.record('instance-failed', description, { instanceId: id });
    }
    return;
  }
  if (transfer.state !== 'copied') return;
  const { seed: _seed, ...unseeded } = assignment.value;
  const copied: InstanceRecord = {
    ...instance.value,
    restore: { ...restore, state: 'copied' },
    message: `backup ${restore.backupId} restored onto ${placement.node}; starting`,
  };
  const res = await ctx.client
    .if(assignment.key, 'Mod', '==', assignment.modRevision)
    .and(instanceKey, 'Mod', '==', instance.modRevision)
    .then(ctx.client.put(assignment.key).value(json(unseeded)), ctx.client.put(instanceKey).value(json(copied)))
    .commit();
  if (res.succeeded) {
    await ctx.events.record('restore-copied', `backup ${restore.backupId}: ${transfer.message}`, {
      instanceId: id,
      node: placement.node,
    });
  }
}
