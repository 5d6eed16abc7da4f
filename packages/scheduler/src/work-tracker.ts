import { Keyspace } from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import type { Ownership } from './ownership.js';
import { collectWork, type WorkList } from './work-list.js';

/**
 * Keeps the work list without re-reading every instance on every change. Watches mark
 * the instances a change can affect; a collect re-judges those plus the ones that had
 * work last time. Changes that can affect any instance (nodes coming or going, fences,
 * scheduler membership) mark everything. At thousands of instances and a placement
 * every millisecond, this is the difference between a pass costing its work and a pass
 * costing the cluster's size.
 */
export class WorkTracker {
  #everything = true;
  readonly #dirty = new Set<string>();
  /** Instances that had slots, waits or a status at the last collect. */
  #open = new Set<string>();
  #last: WorkList | undefined;

  constructor(
    private readonly state: ClusterState,
    private readonly ownership: Ownership,
  ) {
    const keys = state.keys;
    const byKey = (prefix: string) => (changes: ReadonlyArray<{ key: string }>) => {
      for (const { key } of changes) {
        const id = Keyspace.tail(prefix, key)[0];
        if (id) this.#dirty.add(id);
      }
    };
    state.instances.on('change', byKey(keys.instances()));
    state.placements.on('change', byKey(keys.placements()));
    state.schedulingStatuses.on('change', byKey(keys.schedulingStatuses()));
    const all = () => {
      this.#everything = true;
    };
    state.nodes.on('change', all);
    state.fences.on('change', all);
    state.schedulers.on('change', all);
  }

  /** Marks everything, e.g. for the periodic full pass. */
  invalidate(): void {
    this.#everything = true;
  }

  collect(): WorkList {
    if (this.#last && !this.#everything && this.#dirty.size === 0) return this.#last;
    const ids = this.#everything ? undefined : new Set([...this.#dirty, ...this.#open]);
    this.#everything = false;
    this.#dirty.clear();
    const work = collectWork(this.state, this.ownership, ids);
    this.#open = new Set([
      ...work.slots.map((s) => s[0]?.instance.value.id ?? ''),
      ...work.waiting.map((w) => w.instanceId),
      ...work.owned.keys(),
    ]);
    this.#last = work;
    return work;
  }
}
