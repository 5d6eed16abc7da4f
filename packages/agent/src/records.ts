import { type AssignmentRecord, type InstanceSecret, isKeySegment } from '@service-foundry/core';
import type { ReplicaRef } from './container-spec.js';

/**
 * Checks of records read from etcd. Other components write them, so a bad value must
 * become a clear replica status, never a crash or a container built from garbage.
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInteger(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/** Problems with an assignment stored at the key of `ref`; empty when it is usable. */
export function assignmentProblems(ref: ReplicaRef, value: unknown): string[] {
  if (!isObject(value)) return ['assignment is not a JSON object'];
  const problems: string[] = [];
  if (value.instanceId !== ref.instanceId) problems.push(`instanceId does not match its key (${ref.instanceId})`);
  if (value.ordinal !== ref.ordinal) problems.push(`ordinal does not match its key (${ref.ordinal})`);
  if (typeof value.serviceName !== 'string' || !isKeySegment(value.serviceName)) {
    problems.push('serviceName must be a service name');
  }
  if (value.desired !== 'running' && value.desired !== 'removed') problems.push('desired must be running or removed');
  const resources = value.resources;
  if (
    !isObject(resources) ||
    !positiveInteger(resources.cpuMillis) ||
    !positiveInteger(resources.memoryMb) ||
    !positiveInteger(resources.diskMb)
  ) {
    problems.push('resources must hold positive integers cpuMillis, memoryMb and diskMb');
  }
  return problems;
}

export function isAssignment(ref: ReplicaRef, value: unknown): value is AssignmentRecord {
  return assignmentProblems(ref, value).length === 0;
}

export function isInstanceSecret(value: unknown): value is InstanceSecret {
  return (
    isObject(value) &&
    typeof value.adminUser === 'string' &&
    value.adminUser.length > 0 &&
    typeof value.adminPassword === 'string' &&
    value.adminPassword.length > 0
  );
}

/** The replica named by an assignment key's tail (`<instanceId>/<ordinal>`). */
export function replicaFromKeyTail(tail: readonly string[]): ReplicaRef | undefined {
  const [instanceId, ordinalText, ...rest] = tail;
  if (!instanceId || !ordinalText || rest.length > 0 || !isKeySegment(instanceId)) return undefined;
  if (!/^(0|[1-9][0-9]{0,8})$/.test(ordinalText)) return undefined;
  return { instanceId, ordinal: Number(ordinalText) };
}
