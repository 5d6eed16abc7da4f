import {
  BadRecordError,
  type Etcd3,
  type Keyspace,
  type PrimaryRecord,
  primaryCodec,
  readRecord,
  type Versioned,
} from '@service-foundry/core';
import type { ReplicaRef } from './container-spec.js';

export type PrimaryClaim = { ok: true } | { ok: false; reason: string };

/**
 * I2: may this replica act as primary at `epoch` right now? Read from etcd immediately
 * before starting or promoting a primary, never from a cached view:
 *
 * - epoch 0 (bootstrap): only while `primary/<id>` does not exist;
 * - epoch E > 0: `primary/<id>` has mod revision E and names this replica on this node.
 *
 * A self-fenced node claims nothing, whatever etcd says; nor does a node that promised an
 * old primary not to take over its instance (`failsafeHold`, failsafe-rule.ts G1/G2), for
 * any epoch but the bootstrap's. Every refusal says "stale epoch", "self-fenced" or
 * "failsafe", so statuses and logs show why a primary did not start.
 */
export async function checkPrimaryClaim(
  client: Etcd3,
  keys: Keyspace,
  node: string,
  ref: ReplicaRef,
  epoch: number,
  selfFenced: boolean,
  failsafeHold?: string,
): Promise<PrimaryClaim> {
  if (selfFenced) {
    return { ok: false, reason: 'self-fenced: the node lease was not renewed in time; no primary starts until it is' };
  }
  if (epoch > 0 && failsafeHold !== undefined) return { ok: false, reason: `failsafe: ${failsafeHold}` };
  const key = keys.primary(ref.instanceId);
  let primary: Versioned<PrimaryRecord> | undefined;
  try {
    primary = await readRecord(client, primaryCodec, key);
  } catch (error) {
    // A key nobody can read names nobody: refused, and said why.
    if (error instanceof BadRecordError) return { ok: false, reason: `stale epoch ${epoch}: ${error.message}` };
    throw error;
  }
  if (epoch === 0) {
    if (!primary) return { ok: true };
    return {
      ok: false,
      reason:
        `stale epoch: the assignment asks for a bootstrap primary (epoch 0) but primary/${ref.instanceId} ` +
        `already exists at epoch ${primary.modRevision} (${describe(primary.value)})`,
    };
  }
  if (!primary) {
    return { ok: false, reason: `stale epoch ${epoch}: primary/${ref.instanceId} does not exist` };
  }
  if (Number(primary.modRevision) !== epoch) {
    return {
      ok: false,
      reason:
        `stale epoch ${epoch}: primary/${ref.instanceId} is at epoch ${primary.modRevision} ` +
        `(${describe(primary.value)})`,
    };
  }
  if (primary.value.ordinal !== ref.ordinal || primary.value.node !== node) {
    return {
      ok: false,
      reason: `stale epoch ${epoch}: primary/${ref.instanceId} at this epoch names ${describe(primary.value)}, not this replica`,
    };
  }
  return { ok: true };
}

function describe(record: PrimaryRecord): string {
  return `replica ${record.ordinal} on node ${record.node}`;
}
