import type { Catalog, Logger } from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { ReplicationCommands } from './replication-commands.js';
import type { StatusWriter } from './status-writer.js';

export interface PositionReporterDeps {
  catalog: Catalog;
  applied: AppliedReplicas;
  statuses: StatusWriter;
  commands: ReplicationCommands;
  log: Logger;
  intervalMs: number;
  /** An unchanged position and role are written again this often (positionAt stays fresh). */
  refreshMs: number;
}

/**
 * Rule 5: every `intervalMs`, asks each running replicated container for its replication
 * position and role, and writes them to its status when either changed, or every `refreshMs`.
 * The controller picks the most advanced replica from these. A replica busy with a
 * replication command is skipped; ticks never overlap.
 */
export class PositionReporter {
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly deps: PositionReporterDeps) {}

  start(): void {
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#tick = Promise.all(this.deps.applied.all().map((entry) => this.#observe(entry)))
        .then(() => undefined)
        .catch((error: unknown) => this.deps.log.warn({ err: error }, 'position pass failed'))
        .finally(() => this.#schedule());
    }, this.deps.intervalMs);
  }

  async #observe(entry: AppliedReplica): Promise<void> {
    const { statuses, commands, catalog, applied, log } = this.deps;
    if (entry.busy > 0) return;
    const status = statuses.current(entry.ref);
    if (status?.containerId !== entry.containerId || status.state !== 'running') return;
    const recipe = catalog.byServiceName(entry.serviceName)?.replication;
    if (!recipe) return;
    let role: AppliedReplica['role'];
    let position: string;
    try {
      [role, position] = await Promise.all([
        commands.role(entry.containerId, recipe),
        commands.position(entry.containerId, recipe),
      ]);
    } catch (error) {
      log.debug({ err: error, instanceId: entry.ref.instanceId, ordinal: entry.ref.ordinal }, 'position probe failed');
      return;
    }
    // The reconciler may have started a command or replaced the container meanwhile.
    if (entry.busy > 0 || applied.of(entry.ref, entry.containerId) !== entry) return;
    const now = Date.now();
    const changed = role !== entry.role || position !== entry.position;
    if (!changed && now - (entry.observedWrittenAt ?? 0) < this.deps.refreshMs) return;
    entry.role = role;
    if (role === 'primary') entry.mayBePrimary = true;
    entry.position = position;
    entry.positionAt = new Date(now).toISOString();
    entry.observedWrittenAt = now;
    await statuses.observe(entry.ref, entry.containerId, appliedStatusFields(entry));
  }
}
