import type { InstanceRecord, IoPolicy, OperationRecord } from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { badRequest } from './osb-errors.js';
import type { ResolvedPlan } from './params-validation.js';
import { durabilityProblem } from './policies.js';
import { newOperationId } from './random.js';

/** A new operation of `type`, in progress from now. */
export function operationRecord(
  type: OperationRecord['type'],
  description: string,
  extra: Partial<OperationRecord> = {},
): OperationRecord {
  return {
    id: newOperationId(type),
    type,
    state: 'in progress',
    description,
    startedAt: new Date().toISOString(),
    ...extra,
  };
}

/** The durability the parameters ask for must be one the instance can honour (400 otherwise). */
export function checkDurability(ctx: BrokerContext, plan: ResolvedPlan, replicas: number, io: IoPolicy): void {
  const streaming = ctx.catalog.replicationMode(plan.entry.osb.name, plan.plan.name) === 'native';
  const problem = durabilityProblem(io.durability, replicas, streaming);
  if (problem) throw badRequest(`invalid parameters for plan ${plan.entry.osb.name}/${plan.plan.name}: ${problem}`);
}

/** OSB's optional `service_id`/`plan_id` hints must name the instance's own, when given (400 otherwise). */
export function checkHints(
  instance: Pick<InstanceRecord, 'id' | 'serviceId' | 'planId'>,
  hints: { service_id?: string; plan_id?: string },
): void {
  if (hints.service_id !== undefined && hints.service_id !== instance.serviceId) {
    throw badRequest(`service_id ${JSON.stringify(hints.service_id)} is not the service of instance ${instance.id}`);
  }
  if (hints.plan_id !== undefined && hints.plan_id !== instance.planId) {
    throw badRequest(`plan_id ${JSON.stringify(hints.plan_id)} is not the plan of instance ${instance.id}`);
  }
}

/** OSB's `maintenance_info` of an instance: the version it runs, described when the catalog still has it. */
export function maintenanceInfoOf(
  instance: InstanceRecord,
  plan: ResolvedPlan | undefined,
): { version: string; description?: string } | undefined {
  const version = instance.maintenanceVersion;
  if (version === undefined) return undefined;
  const current = plan?.plan.maintenance_info;
  return current?.version === version && current.description
    ? { version, description: current.description }
    : { version };
}
