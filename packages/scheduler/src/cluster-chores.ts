import { type Etcd3, type EventLog, type Logger, replicaId } from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';

/** How many replica names a drain event lists before "and N more". */
const listedReplicas = 10;

/**
 * Work for the whole cluster rather than per instance, done by the eldest scheduler only:
 * reporting what is left on draining nodes, and deleting scheduling statuses whose
 * instance is gone.
 *
 * Drain: a draining node takes no new replicas, and the controller relocates what it holds
 * one replica at a time (relocator.ts, drain-requests.ts); what remains is reported here
 * (and by `sf nodes`).
 */
export class ClusterChores {
  /** Last drain report per node, so that events say each thing once. */
  readonly #drainReports = new Map<string, string>();

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {}

  async run(): Promise<void> {
    await Promise.all([this.#reportDrains(), this.#dropOrphanStatuses()]);
  }

  async #reportDrains(): Promise<void> {
    const keys = this.state.keys;
    const draining = new Set<string>();
    for (const { value: control } of this.state.nodeControls.items.values()) {
      if (!control.draining) continue;
      draining.add(control.node);
      const ledger = this.state.allocations.items.get(keys.allocation(control.node))?.value;
      const remaining = Object.values(ledger?.replicas ?? {})
        .map((r) => replicaId(r.instanceId, r.ordinal))
        .sort();
      const listed = remaining.slice(0, listedReplicas).join(', ');
      const more = remaining.length > listedReplicas ? ` and ${remaining.length - listedReplicas} more` : '';
      const message =
        remaining.length === 0
          ? `node ${control.node} is drained: no replicas remain`
          : `node ${control.node} is draining: ${remaining.length} replica${remaining.length === 1 ? '' : 's'} remain (${listed}${more}); relocating them one at a time`;
      if (this.#drainReports.get(control.node) === message) continue;
      this.#drainReports.set(control.node, message);
      this.log.info({ node: control.node, remaining: remaining.length }, 'drain report');
      await this.events.record(remaining.length ? 'node-draining' : 'node-drained', message, { node: control.node });
    }
    for (const node of this.#drainReports.keys()) if (!draining.has(node)) this.#drainReports.delete(node);
  }

  async #dropOrphanStatuses(): Promise<void> {
    const keys = this.state.keys;
    for (const status of [...this.state.schedulingStatuses.items.values()]) {
      const instance = this.state.instances.items.get(keys.instance(status.value.instanceId))?.value;
      if (instance && instance.phase !== 'deprovisioning') continue;
      await this.client
        .if(status.key, 'Mod', '==', status.modRevision)
        .then(this.client.delete().key(status.key))
        .commit();
    }
  }
}
