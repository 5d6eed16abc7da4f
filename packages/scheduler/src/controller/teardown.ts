import {
  allocationCodec,
  assignmentCodec,
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  instanceTombstone,
  json,
  type Keyspace,
  type Logger,
  type PlacementRecord,
  readRecord,
  tombstoneTtlSeconds,
  type Versioned,
} from '@service-foundry/core';
import { release } from '../reserve.js';

/**
 * Gives back what an instance holds, step by step and safe to repeat: withdraw the route
 * and primary, ask each agent to remove its replica, and return the capacity (allocation
 * and placement) once the agent confirms. Used by teardown, and for a failed provision,
 * which keeps its records (the platform still deprovisions it) but holds nothing.
 */
export async function releaseReplicas(
  client: Etcd3,
  keys: Keyspace,
  instanceId: string,
  placements: PlacementRecord[],
  hasRouteOrPrimary: boolean,
): Promise<void> {
  if (hasRouteOrPrimary) {
    await client.delete().key(keys.route(instanceId)).exec();
    await client.delete().key(keys.primary(instanceId)).exec();
  }
  for (const placement of placements) {
    const assignmentKey = keys.assignment(placement.node, instanceId, placement.ordinal);
    const assignment = await readRecord(client, assignmentCodec, assignmentKey);
    if (assignment && assignment.value.desired !== 'removed') {
      await client
        .if(assignmentKey, 'Mod', '==', assignment.modRevision)
        .then(client.put(assignmentKey).value(json({ ...assignment.value, desired: 'removed' })))
        .commit();
    } else if (!assignment) {
      const allocation = await readRecord(client, allocationCodec, keys.allocation(placement.node));
      if (allocation) await release(client, keys, allocation, instanceId, placement.ordinal);
      else await client.delete().key(keys.placement(instanceId, placement.ordinal)).exec();
    }
  }
}

/**
 * Deprovision, step by step and safe to repeat: release the replicas (releaseReplicas),
 * then delete the instance's records when no placement is left.
 */
export async function teardownStep(
  client: Etcd3,
  keys: Keyspace,
  instance: Versioned<InstanceRecord>,
  placements: PlacementRecord[],
  hasRouteOrPrimary: boolean,
  events: EventLog,
  log: Logger,
): Promise<void> {
  const id = instance.value.id;
  await releaseReplicas(client, keys, id, placements, hasRouteOrPrimary);
  if (placements.length > 0) return;
  // Backups outlive their instance, and the data in them holds the instance's users: the
  // credentials stay while any backup of it exists, so that `sf restore` can still use them.
  const backups = await client.getAll().prefix(keys.instanceBackups(id)).count();
  // OSB: last_operation answers 410 for a deleted instance, 404 for one that never existed.
  const tombstoneLease = await client.lease(tombstoneTtlSeconds, { autoKeepAlive: false }).grant();
  const res = await client
    .if(keys.instance(id), 'Mod', '==', instance.modRevision)
    .then(
      client.delete().key(keys.instance(id)),
      client
        .put(keys.tombstone(id))
        .value(json(instanceTombstone(instance.value, new Date())))
        .lease(tombstoneLease),
      ...(backups > 0 ? [] : [client.delete().key(keys.secret(id))]),
      client.delete().key(keys.routerPort(instance.value.routerPort)),
      client.delete().key(keys.schedulingStatus(id)),
      client.delete().prefix(keys.instanceBindings(id)),
      client.delete().prefix(keys.instanceRelocations(id)),
      client.delete().key(keys.switchover(id)),
    )
    .commit();
  if (res.succeeded) {
    log.info({ instanceId: id }, 'instance deprovisioned');
    await events.record('instance-deleted', 'instance deprovisioned', { instanceId: id });
  }
}
