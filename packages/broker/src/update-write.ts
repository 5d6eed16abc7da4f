import { isDeepStrictEqual } from 'node:util';
import { ErrorCodes, type InstanceRecord, type OperationRecord, type UpdateRequest } from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { concurrencyError, notFound, OsbError } from './osb-errors.js';

/**
 * The steps every instance update shares, whoever asks (the OSB `PATCH`, `sf
 * upgrade-service`): whether the instance can take an update at all, the answer to one
 * re-sent while it runs, and the one write that starts it.
 */

/** Two update requests ask for the same thing (absent parameters and `{}` both change nothing). */
export function sameRequest(a: UpdateRequest | undefined, b: UpdateRequest): boolean {
  if (!a) return false;
  return (
    a.planId === b.planId &&
    a.maintenanceVersion === b.maintenanceVersion &&
    (a.rotateCredentials ?? false) === (b.rotateCredentials ?? false) &&
    isDeepStrictEqual(a.parameters ?? {}, b.parameters ?? {})
  );
}

/** Refuses an update of an instance that is being created or deleted, or whose provision failed. */
export function checkUpdatable(instance: InstanceRecord): void {
  if (instance.phase === 'provisioning' || instance.phase === 'deprovisioning') {
    throw concurrencyError(`instance ${instance.id} is ${instance.phase}; wait until that finishes`);
  }
  if (instance.phase === 'failed') {
    throw new OsbError(
      422,
      'InstanceFailed',
      `instance ${instance.id} failed to provision (${instance.message}); deprovision it`,
      ErrorCodes.conflict,
    ).withOutcome({ instanceUsable: false, updateRepeatable: false });
  }
}

/**
 * While an operation runs: the id of the update `asked` already started (OSB: a re-sent
 * request gets the same operation), else 422 ConcurrencyError. Undefined when none runs.
 */
export function runningOperation(instance: InstanceRecord, asked: UpdateRequest): string | undefined {
  if (instance.operation.state !== 'in progress') return undefined;
  if (instance.operation.type === 'update' && sameRequest(instance.operation.request, asked)) {
    return instance.operation.id;
  }
  throw concurrencyError(`instance ${instance.id} has an operation in progress (${instance.operation.description})`);
}

export interface UpdateWrite {
  /** The fields the update changes. */
  change: Partial<InstanceRecord>;
  operation: OperationRecord;
  /**
   * The change was computed from the record's plan and replica count (a plan change, an
   * upgrade): refused if either changed since it was read.
   */
  shapeBound: boolean;
  /** The event recorded when this write starts the operation. */
  event: { kind: string; message: string };
}

/**
 * Starts an update in one compare-and-put of the instance record: refused (nothing
 * written) if an operation started or the phase changed since `instance` was read. Returns
 * the operation now running: this one, or the same request's from another broker.
 */
export async function writeUpdate(
  ctx: BrokerContext,
  instance: InstanceRecord,
  asked: UpdateRequest,
  write: UpdateWrite,
): Promise<{ operation: OperationRecord; started: boolean }> {
  const id = instance.id;
  const updated = await ctx.instances.update(id, (current) => {
    if (current.operation.state === 'in progress') {
      // Another broker took the same request a moment ago: answer with its operation.
      if (current.operation.type === 'update' && sameRequest(current.operation.request, asked)) return current;
      throw concurrencyError(`instance ${id} has an operation in progress (${current.operation.description})`);
    }
    if (current.phase !== 'ready') {
      throw concurrencyError(`instance ${id} is ${current.phase}; wait until that finishes`);
    }
    // Checked against the record as read: a plan change or upgrade computed from another
    // replica count or plan would be wrong.
    if (write.shapeBound && (current.planId !== instance.planId || current.replicas !== instance.replicas)) {
      throw concurrencyError(`instance ${id} changed while this update was checked; try again`);
    }
    return { ...current, ...write.change, operation: write.operation };
  });
  if (!updated) throw notFound(`instance ${id} does not exist`);
  const started = updated.operation.id === write.operation.id;
  if (started) await ctx.events.record(write.event.kind, write.event.message, { instanceId: id });
  return { operation: updated.operation, started };
}
