import { type AssignmentRecord, type InstanceSecret, isKeySegment, parseServedVolume } from '@service-foundry/core';
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

function naturalNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Host names and IPv4 addresses; nothing that could smuggle arguments into a command. */
const hostPattern = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const durabilities = ['async', 'received', 'remote-fsync'];
const localIos = ['fsync', 'batched', 'unsafe'];

/** Problems with the replication fields (role, epoch, upstream, io, generation). */
function replicationProblems(value: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (value.role !== undefined && value.role !== 'primary' && value.role !== 'replica') {
    problems.push('role must be primary or replica');
  }
  if (value.epoch !== undefined && !naturalNumber(value.epoch)) problems.push('epoch must be an integer >= 0');
  if (value.role === 'primary' && value.epoch === undefined) problems.push('a primary needs an epoch (0 to bootstrap)');
  const upstream = value.upstream;
  if (upstream !== undefined) {
    if (
      !isObject(upstream) ||
      typeof upstream.host !== 'string' ||
      !hostPattern.test(upstream.host) ||
      !positiveInteger(upstream.port) ||
      (upstream.port as number) > 65535
    ) {
      problems.push('upstream must be {host: a host name or IPv4 address, port: 1..65535}');
    }
  }
  const io = value.io;
  if (io !== undefined) {
    if (!isObject(io) || !durabilities.includes(io.durability as string) || !localIos.includes(io.localIo as string)) {
      problems.push(`io must be {durability: ${durabilities.join('|')}, localIo: ${localIos.join('|')}}`);
    }
  }
  if (value.generation !== undefined && !naturalNumber(value.generation)) {
    problems.push('generation must be an integer >= 0');
  }
  return problems;
}

/** A seed names a live node and a served volume name; the round is a positive integer. */
function seedProblems(seed: unknown): string[] {
  if (seed === undefined) return [];
  if (
    !isObject(seed) ||
    !isObject(seed.from) ||
    typeof seed.from.node !== 'string' ||
    !isKeySegment(seed.from.node) ||
    typeof seed.from.volume !== 'string' ||
    parseServedVolume(seed.from.volume) === undefined ||
    !positiveInteger(seed.round)
  ) {
    return ['seed must be {from: {node, volume: replica.<id>.<n> | backup.<id>.<backup>}, round: integer >= 1}'];
  }
  return [];
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
  if (value.desired !== 'running' && value.desired !== 'removed' && value.desired !== 'stopped') {
    problems.push('desired must be running, stopped or removed');
  }
  if (value.keepVolume !== undefined && typeof value.keepVolume !== 'boolean')
    problems.push('keepVolume must be a boolean');
  if (value.movedTo !== undefined && (typeof value.movedTo !== 'string' || !isKeySegment(value.movedTo))) {
    problems.push('movedTo must be a node name');
  }
  problems.push(...seedProblems(value.seed));
  const resources = value.resources;
  if (
    !isObject(resources) ||
    !positiveInteger(resources.cpuMillis) ||
    !positiveInteger(resources.memoryMb) ||
    !positiveInteger(resources.diskMb)
  ) {
    problems.push('resources must hold positive integers cpuMillis, memoryMb and diskMb');
  }
  problems.push(...replicationProblems(value));
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
    value.adminPassword.length > 0 &&
    (value.replicationUser === undefined || typeof value.replicationUser === 'string') &&
    (value.replicationPassword === undefined || typeof value.replicationPassword === 'string')
  );
}

/** The replica named by an assignment key's tail (`<instanceId>/<ordinal>`). */
export function replicaFromKeyTail(tail: readonly string[]): ReplicaRef | undefined {
  const [instanceId, ordinalText, ...rest] = tail;
  if (!instanceId || !ordinalText || rest.length > 0 || !isKeySegment(instanceId)) return undefined;
  if (!/^(0|[1-9][0-9]{0,8})$/.test(ordinalText)) return undefined;
  return { instanceId, ordinal: Number(ordinalText) };
}
