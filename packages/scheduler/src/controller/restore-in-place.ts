import {
  type AssignmentRecord,
  backupVolumeSource,
  type InstanceRecord,
  type InstanceRestore,
  json,
  type PrimaryRecord,
  type Versioned,
} from '@service-foundry/core';
import type { RestoreContext } from './restore.js';
import type { InstanceView } from './topology.js';

/**
 * `sf restore NAME BACKUP` (no `--as`): the instance's own backup over its data.
 *
 * | state    | condition                                            | action                                                  |
 * |----------|------------------------------------------------------|---------------------------------------------------------|
 * | stopping | a replica's assignment still says `running`          | `desired: stopped` (all of them)                         |
 * | stopping | every replica on a live node reports `stopped`       | seed the primary's replica (or the lowest live one) from the backup into the volume it uses; → copying |
 * | copying  | the copy failed for good                             | seed withdrawn, every replica `running` again: the data is as it was (the copy is swapped in whole or not at all); operation failed |
 * | copying  | copied                                               | one txn: seed withdrawn, every replica `running`, natively replicated others rebuilt (generation + 1: their data is newer than the backup), `primary/<id>` rewritten (a new epoch) → copied |
 * | copied   | the route names the primary at the new epoch (and, natively replicated, every replica runs again) | operation succeeded |
 */
export async function restoreInPlaceStep(
  ctx: RestoreContext,
  instance: Versioned<InstanceRecord>,
  view: InstanceView,
  routed: boolean,
): Promise<void> {
  const restore = instance.value.restore as InstanceRestore;
  const { client, keys } = ctx;
  const instanceKey = keys.instance(instance.value.id);
  const put = (record: Versioned<AssignmentRecord>, next: AssignmentRecord) => client.put(record.key).value(json(next));

  if (restore.state === 'copied') {
    if (!routed || instance.value.operation.state !== 'in progress') return;
    // Natively replicated: done once the rebuilt replicas run too (with synchronous
    // durability, writes wait for them).
    const running = [...view.statuses.values()].filter((s) => s.value.state === 'running').length;
    if (view.replicated && running < view.instance.replicas) return;
    const description = `backup ${restore.backupId} restored in place`;
    const done: InstanceRecord = {
      ...instance.value,
      message: description,
      operation: { ...instance.value.operation, state: 'succeeded', description },
    };
    const res = await client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .then(client.put(instanceKey).value(json(done)))
      .commit();
    if (res.succeeded) await ctx.events.record('restore-complete', description, { instanceId: instance.value.id });
    return;
  }

  const assignments = view.placements
    .map((p) => ({ placement: p, assignment: view.assignments.get(p.ordinal) }))
    .filter(
      (x): x is { placement: (typeof x)['placement']; assignment: Versioned<AssignmentRecord> } => !!x.assignment,
    );

  if (restore.state === 'stopping') {
    const running = assignments.filter((x) => x.assignment.value.desired === 'running');
    for (const { assignment } of running) {
      // The instance's revision too: a pass that still sees `stopping` after the seed was
      // written (its mirrors lag differently) must not stop the replica being seeded.
      await client
        .if(assignment.key, 'Mod', '==', assignment.modRevision)
        .and(instanceKey, 'Mod', '==', instance.modRevision)
        .then(put(assignment, { ...assignment.value, desired: 'stopped' }))
        .commit();
    }
    if (running.length > 0) return;
    const stopped = assignments.every(
      ({ placement }) =>
        !view.liveNodes.has(placement.node) ||
        (view.statuses.get(placement.ordinal)?.value.node === placement.node &&
          view.statuses.get(placement.ordinal)?.value.state === 'stopped'),
    );
    if (!stopped) return;
    const live = assignments.filter((x) => view.liveNodes.has(x.placement.node));
    const target = live.find((x) => x.placement.ordinal === view.primary?.value.ordinal) ?? live[0];
    if (!target) return;
    const seeded: AssignmentRecord = {
      ...target.assignment.value,
      desired: 'running',
      seed: {
        from: { node: restore.node, volume: backupVolumeSource(restore.instanceId, restore.backupId) },
        round: 1,
      },
    };
    const next: InstanceRecord = {
      ...instance.value,
      restore: { ...restore, state: 'copying', ordinal: target.placement.ordinal },
      message: `restoring backup ${restore.backupId} in place: copying it onto ${target.placement.node}`,
    };
    await client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .and(target.assignment.key, 'Mod', '==', target.assignment.modRevision)
      .then(put(target.assignment, seeded), client.put(instanceKey).value(json(next)))
      .commit();
    return;
  }

  // copying
  const target = assignments.find((x) => x.placement.ordinal === restore.ordinal);
  if (!target) return;
  const transfer = ctx.transferOf(instance.value.id, target.placement.ordinal, target.placement.node);
  const failed = transfer?.round === 1 && transfer.state === 'failed' && !transfer.willRetry;
  const copied = transfer?.round === 1 && transfer.state === 'copied';
  if (!failed && !copied && view.liveNodes.has(target.placement.node)) return;
  const txn = client.if(instanceKey, 'Mod', '==', instance.modRevision);
  const ops = [];
  for (const { placement, assignment } of assignments) {
    txn.and(assignment.key, 'Mod', '==', assignment.modRevision);
    const { seed: _seed, ...rest } = assignment.value;
    const rebuild = copied && view.replicated && placement.ordinal !== target.placement.ordinal;
    if (rebuild) {
      // No upstream until the restored primary reports where it answers now (its container
      // may come back on another address): a clone from the old one would wait in vain.
      const { upstream: _upstream, ...withoutUpstream } = rest;
      ops.push(
        put(assignment, {
          ...withoutUpstream,
          desired: 'running',
          role: 'replica',
          generation: (rest.generation ?? 0) + 1,
        }),
      );
    } else {
      ops.push(put(assignment, { ...rest, desired: 'running' }));
    }
  }
  let next: InstanceRecord;
  if (copied) {
    const primary: PrimaryRecord = {
      instanceId: instance.value.id,
      ordinal: target.placement.ordinal,
      node: target.placement.node,
      host: '',
      port: 0,
      electedAt: new Date().toISOString(),
    };
    if (view.primary) txn.and(keys.primary(instance.value.id), 'Mod', '==', view.primary.modRevision);
    else txn.and(keys.primary(instance.value.id), 'Version', '==', 0);
    ops.push(client.put(keys.primary(instance.value.id)).value(json(primary)));
    next = {
      ...instance.value,
      restore: { ...restore, state: 'copied' },
      message: `backup ${restore.backupId} copied onto ${target.placement.node}; starting`,
    };
  } else {
    const reason = failed ? (transfer?.message ?? 'copy failed') : `node ${target.placement.node} stopped answering`;
    const description = `restoring backup ${restore.backupId} failed: ${reason}; the data is as it was`;
    const { restore: _restore, ...rest } = instance.value;
    next = { ...rest, message: description, operation: { ...instance.value.operation, state: 'failed', description } };
  }
  ops.push(client.put(instanceKey).value(json(next)));
  const res = await txn.then(...ops).commit();
  if (!res.succeeded) return;
  await ctx.events.record(copied ? 'restore-copied' : 'restore-failed', next.message, {
    instanceId: instance.value.id,
    node: target.placement.node,
  });
}
