import type { RelocationRecord, Versioned } from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';

/** A failed drain relocation is asked for again after this long. */
export const drainRetryMs = 60_000;

export interface DrainRequest {
  record: RelocationRecord;
  /** The replica's previous relocation record, compared when it is replaced. */
  current: Versioned<RelocationRecord> | undefined;
}

function open(record: RelocationRecord): boolean {
  return record.phase !== 'done' && record.phase !== 'failed';
}

/**
 * Relocations that draining nodes need next: one replica at a time per node (a drain
 * must not stop every service on a node at once), ready instances only, and a replica
 * whose drain relocation failed is tried again after `drainRetryMs`.
 */
export function drainRequests(
  state: ClusterState,
  relocations: ReadonlyMap<string, Versioned<RelocationRecord>>,
  now: number,
): DrainRequest[] {
  const keys = state.keys;
  const busy = new Set<string>();
  for (const { value } of relocations.values()) if (open(value)) busy.add(value.from);
  const requests: DrainRequest[] = [];
  for (const { value: control } of state.nodeControls.items.values()) {
    if (!control.draining || busy.has(control.node)) continue;
    const candidates = [...state.placements.items.values()]
      .map((p) => p.value)
      .filter((p) => p.node === control.node)
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId) || a.ordinal - b.ordinal);
    for (const placement of candidates) {
      const instance = state.instances.items.get(keys.instance(placement.instanceId))?.value;
      if (instance?.phase !== 'ready') continue;
      const current = relocations.get(keys.relocation(placement.instanceId, placement.ordinal));
      if (current && open(current.value)) continue;
      if (current?.value.phase === 'failed' && now - Date.parse(current.value.updatedAt) < drainRetryMs) continue;
      const at = new Date(now).toISOString();
      requests.push({
        current,
        record: {
          instanceId: placement.instanceId,
          ordinal: placement.ordinal,
          from: control.node,
          keepSource: false,
          phase: 'requested',
          message: `requested: node ${control.node} is draining`,
          reason: 'drain',
          requestedBy: control.by,
          requestedAt: at,
          updatedAt: at,
        },
      });
      break;
    }
  }
  return requests;
}
