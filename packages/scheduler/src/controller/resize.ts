import {
  type AssignmentRecord,
  allocationCodec,
  type Etcd3,
  json,
  type Keyspace,
  type NodeAllocation,
  nodeCodec,
  type Resources,
  readRecord,
  replicaId,
  resizeShortfall,
  sameResources,
  type Versioned,
} from '@service-foundry/core';

/**
 * Resizing a replica in place (a plan change of CPU, memory or disk), in two writes to
 * its node's ledger:
 *
 * | step    | when                                                   | ledger entry            | assignment   |
 * |---------|--------------------------------------------------------|-------------------------|--------------|
 * | resize  | the assignment asks other resources than the instance  | larger of old and new   | new resources |
 * | trim    | the plan change settles (every replica runs the limits) | new                     | unchanged    |
 *
 * Between the two the node keeps room for both sizes: the agent may not have lowered the
 * container's memory yet (it refuses while the service uses too much), so the capacity is
 * given back only once the container runs with the new limits. Disk is a reservation:
 * nothing in the container enforces it, so only the ledger changes.
 *
 * Each write compares the ledger's revision, like every placement (transactions/), so it
 * can never put a node over capacity whatever other schedulers commit meanwhile.
 */
export type ResizeOutcome = { ok: true } | { ok: false; reason: string };

async function ledgerAndCapacity(
  client: Etcd3,
  keys: Keyspace,
  node: string,
): Promise<{ ledger: Versioned<NodeAllocation> | undefined; capacity: Resources | undefined }> {
  const [ledger, record] = await Promise.all([
    readRecord(client, allocationCodec, keys.allocation(node)),
    readRecord(client, nodeCodec, keys.node(node)),
  ]);
  return { ledger, capacity: record?.value.capacity };
}

function withEntry(
  node: string,
  ledger: Versioned<NodeAllocation> | undefined,
  instanceId: string,
  ordinal: number,
  resources: Resources,
): NodeAllocation {
  return {
    node,
    replicas: {
      ...(ledger?.value.replicas ?? {}),
      [replicaId(instanceId, ordinal)]: { instanceId, ordinal, resources },
    },
  };
}

/** Step `resize`: the node's ledger holds the larger size, the assignment asks the new one. */
export async function resizeReplica(
  client: Etcd3,
  keys: Keyspace,
  node: string,
  assignment: Versioned<AssignmentRecord>,
  want: Resources,
): Promise<ResizeOutcome> {
  const { instanceId, ordinal } = assignment.value;
  const { ledger, capacity } = await ledgerAndCapacity(client, keys, node);
  if (!capacity)
    return { ok: false, reason: `node ${node} is not registered (down?); replica ${ordinal} waits for it` };
  const key = replicaId(instanceId, ordinal);
  const { hold, short } = resizeShortfall(ledger?.value, capacity, key, assignment.value.resources, want);
  if (short.length > 0) {
    return { ok: false, reason: `node ${node} has no room to resize replica ${ordinal}: ${short.join(', ')}` };
  }
  const ledgerKey = keys.allocation(node);
  const txn = client.if(assignment.key, 'Mod', '==', assignment.modRevision).and(keys.node(node), 'Version', '>', 0);
  if (ledger) txn.and(ledgerKey, 'Mod', '==', ledger.modRevision);
  else txn.and(ledgerKey, 'Version', '==', 0);
  const res = await txn
    .then(
      client.put(ledgerKey).value(json(withEntry(node, ledger, instanceId, ordinal, hold))),
      client.put(assignment.key).value(json({ ...assignment.value, resources: want })),
    )
    .commit();
  return res.succeeded
    ? { ok: true }
    : { ok: false, reason: `node ${node}'s ledger or the assignment changed meanwhile; trying again` };
}

/**
 * Step `trim`: the ledger entries of the instance's replicas become exactly `want`. True
 * when every entry already was (nothing written); false after a write or a lost race.
 */
export async function trimLedgers(
  client: Etcd3,
  keys: Keyspace,
  instanceId: string,
  placements: ReadonlyArray<{ node: string; ordinal: number }>,
  want: Resources,
): Promise<boolean> {
  let settled = true;
  for (const { node, ordinal } of placements) {
    const ledger = await readRecord(client, allocationCodec, keys.allocation(node));
    const entry = ledger?.value.replicas[replicaId(instanceId, ordinal)];
    if (!ledger || !entry || sameResources(entry.resources, want)) continue;
    settled = false;
    await client
      .if(ledger.key, 'Mod', '==', ledger.modRevision)
      .then(client.put(ledger.key).value(json(withEntry(node, ledger, instanceId, ordinal, want))))
      .commit();
  }
  return settled;
}
