import type { NodeControlRecord, NodeFenceRecord, Resources } from '@service-foundry/core';
import type { NodeCandidate, PendingReplica } from '../src/index.js';

export interface CandidateOptions {
  used?: Partial<Resources>;
  capacity?: Partial<Resources>;
  /** Instance ids held, as replica 0 of each. */
  holds?: string[];
  labels?: Record<string, string>;
  alive?: boolean;
  control?: Partial<NodeControlRecord>;
  fence?: NodeFenceRecord['state'];
}

/** A node as the placement pipeline sees it, 1000m / 1000 MB / 1000 MB unless told. */
export function candidate(name: string, options: CandidateOptions = {}): NodeCandidate {
  const replicas = Object.fromEntries(
    (options.holds ?? []).map((id) => [
      `${id}/0`,
      { instanceId: id, ordinal: 0, resources: { cpuMillis: 0, memoryMb: 0, diskMb: 0 } },
    ]),
  );
  return {
    node: {
      name,
      address: '127.0.0.1',
      capacity: { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000, ...options.capacity },
      labels: options.labels ?? {},
      startedAt: '',
    },
    alive: options.alive ?? true,
    allocation: { node: name, replicas },
    allocated: { cpuMillis: 0, memoryMb: 0, diskMb: 0, ...options.used },
    instanceIds: new Set(options.holds ?? []),
    control: options.control
      ? { node: name, cordoned: false, draining: false, reason: '', updatedAt: '', by: 'op', ...options.control }
      : undefined,
    fence: options.fence ? { node: name, state: options.fence, reason: '', by: 'controller', at: '' } : undefined,
  };
}

export function replica(extra: Partial<PendingReplica> = {}): PendingReplica {
  return { instanceId: 'db1', ordinal: 1, resources: { cpuMillis: 200, memoryMb: 300, diskMb: 100 }, ...extra };
}
