import {
  type AssignmentRecord,
  type Etcd3,
  type EventLog,
  json,
  type Logger,
  type NodeAllocation,
  type NodeFenceRecord,
  type PlacementRecord,
  PrefixMirror,
  type PrimaryRecord,
  type RelocationRecord,
  type ReplicaRole,
  relocationCodec,
  replicaId,
  replicaVolumeSource,
  type TransferFigures,
  type TransferStatusRecord,
  transferStatusCodec,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import { decideRelocation, type RelocationView } from './controller/relocation.js';
import { chooseRelocationTarget } from './controller/relocation-target.js';
import { defaultIo } from './controller/topology.js';
import { drainRequests } from './drain-requests.js';

/** How many nodes a placement remembers it was on (volume locality). */
const historyLength = 3;

/**
 * Executes relocations (`relocations/<id>/<ordinal>`) step by step, as decided by
 * controller/relocation.ts, and asks for relocations of what sits on draining nodes.
 * Every step is one transaction comparing the revisions it was decided on, so a second
 * controller, or this one after a pause, cannot apply a step twice or out of order.
 */
export class Relocator {
  readonly #relocations: PrefixMirror<RelocationRecord>;
  readonly #transfers: PrefixMirror<TransferStatusRecord>;
  /** Last message written per relocation, so waiting is said once. */
  readonly #said = new Map<string, string>();

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly assignments: PrefixMirror<AssignmentRecord>,
    private readonly fences: PrefixMirror<NodeFenceRecord>,
    /** Whether a service has native replication (roles and epochs in its assignments). */
    private readonly replicated: (serviceName: string, planName: string) => boolean,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {
    this.#relocations = new PrefixMirror(client, relocationCodec, state.keys.relocations(), log);
    this.#transfers = new PrefixMirror(client, transferStatusCodec, state.keys.transfers(), log);
  }

  async start(onChange: () => void): Promise<void> {
    await Promise.all([this.#relocations.start(), this.#transfers.start()]);
    this.#relocations.on('change', onChange);
    this.#transfers.on('change', onChange);
  }

  async close(): Promise<void> {
    await Promise.all([this.#relocations.close(), this.#transfers.close()]);
  }

  /** A seeding agent's progress (relocations and restores share the mirror). */
  transferOf(instanceId: string, ordinal: number, node: string): TransferStatusRecord | undefined {
    return this.#transfers.items.get(this.state.keys.transfer(instanceId, ordinal, node))?.value;
  }

  async pass(): Promise<void> {
    for (const relocation of [...this.#relocations.items.values()]) {
      try {
        await this.#step(relocation);
      } catch (error) {
        this.log.warn({ err: error, relocation: relocation.key }, 'relocation step failed; will retry');
      }
    }
    try {
      for (const request of drainRequests(this.state, this.#relocations.items, Date.now())) {
        await this.#requestForDrain(request.record, request.current);
      }
    } catch (error) {
      this.log.warn({ err: error }, 'drain requests failed; will retry');
    }
  }

  #view(relocation: Versioned<RelocationRecord>): RelocationView {
    const keys = this.state.keys;
    const r = relocation.value;
    const id = r.instanceId;
    const transfer = r.to ? this.#transfers.items.get(keys.transfer(id, r.ordinal, r.to))?.value : undefined;
    return {
      relocation,
      instance: this.state.instances.items.get(keys.instance(id))?.value,
      placement: this.state.placements.items.get(keys.placement(id, r.ordinal)),
      source: this.assignments.items.get(keys.assignment(r.from, id, r.ordinal)),
      target: r.to ? this.assignments.items.get(keys.assignment(r.to, id, r.ordinal)) : undefined,
      status: this.state.statuses.items.get(keys.status(id, r.ordinal))?.value,
      transfer,
      primary: this.state.primaries.items.get(keys.primary(id)),
      route: this.state.routes.items.get(keys.route(id))?.value,
      liveNodes: new Set([...this.state.nodes.items.values()].map((n) => n.value.name)),
      now: Date.now(),
    };
  }

  async #step(relocation: Versioned<RelocationRecord>): Promise<void> {
    const view = this.#view(relocation);
    const step = decideRelocation(view);
    switch (step.kind) {
      case 'none':
        this.#said.delete(relocation.key);
        return;
      case 'wait':
        return this.#say(relocation, step.message);
      case 'reserve':
        return this.#reserve(view);
      case 'next-round':
        return this.#nextRound(view, { precopy: step.precopy }, `pre-copy round 2: what changed during round 1`);
      case 'stop-source':
        return this.#stopSource(view, step.catchUp);
      case 'final-round':
        return this.#nextRound(
          view,
          { phase: 'final' },
          `copying the final delta to ${view.relocation.value.to}`,
          view.primary?.value.ordinal === view.relocation.value.ordinal ? 'primary' : 'replica',
        );
      case 'switch':
        return this.#switch(view, step.final);
      case 'done':
        return this.#done(view);
      case 'abort':
        return this.#abort(view, step.reason);
    }
  }

  /** Puts the record's next version, comparing the one the step was decided on. */
  #recordPut(view: RelocationView, patch: Partial<RelocationRecord>) {
    const next: RelocationRecord = { ...view.relocation.value, ...patch, updatedAt: new Date().toISOString() };
    return { key: view.relocation.key, value: json(next), next };
  }

  async #say(relocation: Versioned<RelocationRecord>, message: string): Promise<void> {
    if (this.#said.get(relocation.key) === message || relocation.value.message === message) return;
    this.#said.set(relocation.key, message);
    await this.client
      .if(relocation.key, 'Mod', '==', relocation.modRevision)
      .then(this.client.put(relocation.key).value(json({ ...relocation.value, message })))
      .commit();
  }

  async #reserve(view: RelocationView): Promise<void> {
    const keys = this.state.keys;
    const r = view.relocation.value;
    const source = view.source;
    const instance = view.instance;
    if (!source || !instance) return this.#abort(view, `no assignment for replica ${r.ordinal} on ${r.from}`);
    const siblings = new Set(
      this.state
        .placementsOf(r.instanceId)
        .filter((p) => p.ordinal !== r.ordinal)
        .map((p) => p.node),
    );
    const allocations = new Map<string, NodeAllocation>();
    for (const a of this.state.allocations.items.values()) allocations.set(a.value.node, a.value);
    const choice = chooseRelocationTarget({
      instanceId: r.instanceId,
      ordinal: r.ordinal,
      from: r.from,
      requested: r.to,
      resources: source.value.resources,
      nodes: [...this.state.nodes.items.values()].map((n) => n.value),
      allocations,
      controls: new Map([...this.state.nodeControls.items.values()].map((c) => [c.value.node, c.value])),
      fences: new Map([...this.fences.items.values()].map((f) => [f.value.node, f.value])),
      siblings,
    });
    if ('problems' in choice) return this.#abort(view, `no node can take it: ${choice.problems.join('; ')}`);
    const to = choice.node;
    const ledgerKey = keys.allocation(to);
    const ledger = this.state.allocations.items.get(ledgerKey);
    const id = replicaId(r.instanceId, r.ordinal);
    const nextLedger: NodeAllocation = {
      node: to,
      replicas: {
        ...(ledger?.value.replicas ?? {}),
        [id]: { instanceId: r.instanceId, ordinal: r.ordinal, resources: source.value.resources },
      },
    };
    const a = source.value;
    const target: AssignmentRecord = {
      instanceId: a.instanceId,
      ordinal: a.ordinal,
      serviceName: a.serviceName,
      planName: a.planName,
      resources: a.resources,
      desired: 'running',
      seed: { from: { node: r.from, volume: replicaVolumeSource(r.instanceId, r.ordinal) }, round: 1 },
      ...(a.io ? { io: a.io } : {}),
      ...(a.generation !== undefined ? { generation: a.generation } : {}),
      ...(a.image !== undefined ? { image: a.image } : {}),
    };
    const record = this.#recordPut(view, { to, phase: 'copying', message: `pre-copy to ${to} while the service runs` });
    const txn = this.client
      .if(view.relocation.key, 'Mod', '==', view.relocation.modRevision)
      .and(keys.node(to), 'Version', '>', 0)
      .and(keys.assignment(to, r.instanceId, r.ordinal), 'Version', '==', 0)
      .and(source.key, 'Mod', '==', source.modRevision);
    if (view.placement) txn.and(view.placement.key, 'Mod', '==', view.placement.modRevision);
    if (ledger) txn.and(ledgerKey, 'Mod', '==', ledger.modRevision);
    else txn.and(ledgerKey, 'Version', '==', 0);
    const res = await txn
      .then(
        this.client.put(ledgerKey).value(json(nextLedger)),
        this.client.put(keys.assignment(to, r.instanceId, r.ordinal)).value(json(target)),
        this.client.put(record.key).value(record.value),
      )
      .commit();
    if (!res.succeeded) return;
    this.log.info({ instanceId: r.instanceId, ordinal: r.ordinal, from: r.from, to }, 'relocation: pre-copy');
    await this.events.record('relocation-copying', `replica ${r.ordinal}: pre-copy from ${r.from} to ${to}`, {
      instanceId: r.instanceId,
      node: to,
    });
  }

  async #stopSource(view: RelocationView, catchUp: TransferFigures): Promise<void> {
    const r = view.relocation.value;
    const source = view.source;
    if (!source) return this.#abort(view, `the assignment on ${r.from} is gone`);
    const stoppedAt = new Date().toISOString();
    const record = this.#recordPut(view, {
      phase: 'stopping',
      catchUp,
      stoppedAt,
      message: `stopping replica ${r.ordinal} on ${r.from} for the final delta`,
    });
    const res = await this.client
      .if(view.relocation.key, 'Mod', '==', view.relocation.modRevision)
      .and(source.key, 'Mod', '==', source.modRevision)
      .then(
        this.client.put(source.key).value(json({ ...source.value, desired: 'stopped' })),
        this.client.put(record.key).value(record.value),
      )
      .commit();
    if (res.succeeded) {
      await this.events.record('relocation-stopping', `${describe(catchUp, 'catch-up round')}; stopping ${r.from}`, {
        instanceId: r.instanceId,
        node: r.from,
      });
    }
  }

  /** Asks the target for one more pull (a delta against what it holds). */
  async #nextRound(
    view: RelocationView,
    patch: Partial<RelocationRecord>,
    message: string,
    /** The final round: the role the copy takes at the switch (the agent prepares its container). */
    final?: ReplicaRole,
  ): Promise<void> {
    const target = view.target as Versioned<AssignmentRecord>;
    const seed = target.value.seed;
    if (!seed) return this.#abort(view, 'the target assignment lost its seed');
    const record = this.#recordPut(view, { ...patch, message });
    await this.client
      .if(view.relocation.key, 'Mod', '==', view.relocation.modRevision)
      .and(target.key, 'Mod', '==', target.modRevision)
      .then(
        this.client
          .put(target.key)
          .value(json({ ...target.value, seed: { ...seed, round: seed.round + 1, ...(final ? { final } : {}) } })),
        this.client.put(record.key).value(record.value),
      )
      .commit();
  }

  /** The point of no return: from here the target's copy is the replica. */
  async #switch(view: RelocationView, final: TransferFigures): Promise<void> {
    const keys = this.state.keys;
    const r = view.relocation.value;
    const to = r.to as string;
    const { source, target, placement, primary } = view;
    if (!source || !target || !placement) return this.#abort(view, 'the replica changed during the final copy');
    const { seed: _seed, ...started } = target.value;
    const movedPlacement: PlacementRecord = {
      ...placement.value,
      node: to,
      placedAt: new Date().toISOString(),
      previousNodes: [r.from, ...(placement.value.previousNodes ?? [])].slice(0, historyLength),
    };
    const fromLedgerKey = keys.allocation(r.from);
    const fromLedger = this.state.allocations.items.get(fromLedgerKey);
    const record = this.#recordPut(view, {
      phase: 'switching',
      final,
      message: `final delta copied; starting replica ${r.ordinal} on ${to}`,
    });
    const txn = this.client
      .if(view.relocation.key, 'Mod', '==', view.relocation.modRevision)
      .and(placement.key, 'Mod', '==', placement.modRevision)
      .and(source.key, 'Mod', '==', source.modRevision)
      .and(target.key, 'Mod', '==', target.modRevision);
    const ops = [
      this.client.put(placement.key).value(json(movedPlacement)),
      this.client.put(target.key).value(json(started)),
      // The old copy stays (stopped) until the target serves: removing a large volume now
      // would hold up Docker while the target's container is being created.
      this.client.put(source.key).value(json({ ...source.value, desired: 'stopped', movedTo: to })),
      this.client.put(record.key).value(record.value),
    ];
    if (fromLedger) {
      txn.and(fromLedgerKey, 'Mod', '==', fromLedger.modRevision);
      const replicas = { ...fromLedger.value.replicas };
      delete replicas[replicaId(r.instanceId, r.ordinal)];
      ops.push(this.client.put(fromLedgerKey).value(json({ node: r.from, replicas })));
    }
    const movesPrimary = primary?.value.ordinal === r.ordinal;
    if (primary && movesPrimary) {
      // A new epoch: the old copy can never be started as primary again (I2), and the
      // route waits for the target to serve at this epoch.
      txn.and(primary.key, 'Mod', '==', primary.modRevision);
      const moved: PrimaryRecord = {
        ...primary.value,
        node: to,
        host: '',
        port: 0,
        electedAt: new Date().toISOString(),
      };
      ops.push(this.client.put(primary.key).value(json(moved)));
    }
    const res = await txn.then(...ops).commit();
    if (!res.succeeded) return;
    this.log.info(
      { instanceId: r.instanceId, ordinal: r.ordinal, to, epoch: movesPrimary ? res.header.revision : undefined },
      'relocation: switched',
    );
    if (movesPrimary && view.instance && this.replicated(view.instance.serviceName, view.instance.planName)) {
      // The role topology.ts would give it on the next pass, given now: one round trip
      // less of downtime. Compares the epoch just made, so it cannot outlive a failover.
      const epoch = res.header.revision;
      const withRole: AssignmentRecord = {
        ...started,
        role: 'primary',
        epoch: Number(epoch),
        io: view.instance.io ?? defaultIo,
      };
      await this.client
        .if(keys.primary(r.instanceId), 'Mod', '==', epoch)
        .and(target.key, 'Mod', '==', epoch)
        .then(this.client.put(target.key).value(json(withRole)))
        .commit();
    }
    await this.events.record(
      'relocation-switched',
      `${describe(final, 'final delta')}; replica ${r.ordinal} now belongs to ${to}${movesPrimary ? ` (epoch ${res.header.revision})` : ''}`,
      { instanceId: r.instanceId, node: to },
    );
  }

  async #done(view: RelocationView): Promise<void> {
    const r = view.relocation.value;
    const now = Date.now();
    const downtimeMs = r.stoppedAt ? now - Date.parse(r.stoppedAt) : undefined;
    const parts = [
      `relocated replica ${r.ordinal} from ${r.from} to ${r.to}`,
      r.precopy ? describe(r.precopy, 'pre-copy') : undefined,
      r.catchUp ? describe(r.catchUp, 'catch-up') : undefined,
      r.final ? describe(r.final, 'final delta') : undefined,
      downtimeMs !== undefined ? `downtime ${(downtimeMs / 1000).toFixed(2)} s` : undefined,
    ].filter(Boolean);
    const message = parts.join('; ');
    const record = this.#recordPut(view, {
      phase: 'done',
      switchedAt: new Date(now).toISOString(),
      message,
      ...(downtimeMs !== undefined ? { downtimeMs } : {}),
    });
    const txn = this.client.if(view.relocation.key, 'Mod', '==', view.relocation.modRevision);
    const ops = [this.client.put(record.key).value(record.value)];
    const source = view.source;
    if (source && source.value.movedTo === r.to && source.value.desired === 'stopped') {
      txn.and(source.key, 'Mod', '==', source.modRevision);
      const removed: AssignmentRecord = { ...source.value, desired: 'removed', keepVolume: r.keepSource };
      ops.push(this.client.put(source.key).value(json(removed)));
    }
    const res = await txn.then(...ops).commit();
    if (!res.succeeded) return;
    this.log.info({ instanceId: r.instanceId, ordinal: r.ordinal, downtimeMs }, message);
    await this.events.record('relocation-complete', message, { instanceId: r.instanceId, node: r.to ?? r.from });
  }

  /** Before the switch only: the source runs again, the target's copy and reservation go. */
  async #abort(view: RelocationView, reason: string): Promise<void> {
    const keys = this.state.keys;
    const r = view.relocation.value;
    const message = `relocation failed: ${reason}; replica ${r.ordinal} stays on ${r.from}`;
    const record = this.#recordPut(view, { phase: 'failed', message });
    const txn = this.client.if(view.relocation.key, 'Mod', '==', view.relocation.modRevision);
    const ops = [this.client.put(record.key).value(record.value)];
    const { source, target } = view;
    if (r.phase === 'switching') {
      // Past the switch (the instance was deleted meanwhile): the old copy only goes away.
      if (source?.value.desired === 'stopped' && source.value.movedTo === r.to) {
        txn.and(source.key, 'Mod', '==', source.modRevision);
        ops.push(this.client.put(source.key).value(json({ ...source.value, desired: 'removed' })));
      }
    } else if (source?.value.desired === 'stopped') {
      txn.and(source.key, 'Mod', '==', source.modRevision);
      ops.push(this.client.put(source.key).value(json({ ...source.value, desired: 'running' })));
    }
    if (r.phase !== 'switching' && target && r.to && target.value.seed) {
      txn.and(target.key, 'Mod', '==', target.modRevision);
      // movedTo: the replica's status belongs to the source; the target removes its copy silently.
      ops.push(this.client.put(target.key).value(json({ ...target.value, desired: 'removed', movedTo: r.from })));
    }
    const toLedger =
      r.to && r.phase !== 'switching' ? this.state.allocations.items.get(keys.allocation(r.to)) : undefined;
    const id = replicaId(r.instanceId, r.ordinal);
    if (toLedger?.value.replicas[id] && view.placement?.value.node !== r.to) {
      txn.and(toLedger.key, 'Mod', '==', toLedger.modRevision);
      const replicas = { ...toLedger.value.replicas };
      delete replicas[id];
      ops.push(this.client.put(toLedger.key).value(json({ node: toLedger.value.node, replicas })));
    }
    const res = await txn.then(...ops).commit();
    if (!res.succeeded) return;
    this.log.error({ instanceId: r.instanceId, ordinal: r.ordinal, reason }, message);
    await this.events.record('relocation-failed', message, { instanceId: r.instanceId, node: r.from });
  }

  async #requestForDrain(record: RelocationRecord, current: Versioned<RelocationRecord> | undefined): Promise<void> {
    const key = this.state.keys.relocation(record.instanceId, record.ordinal);
    const txn = current
      ? this.client.if(key, 'Mod', '==', current.modRevision)
      : this.client.if(key, 'Version', '==', 0);
    const res = await txn.then(this.client.put(key).value(json(record))).commit();
    if (res.succeeded) {
      await this.events.record(
        'relocation-requested',
        `node ${record.from} is draining: relocating replica ${record.ordinal}`,
        {
          instanceId: record.instanceId,
          node: record.from,
        },
      );
    }
  }
}

function describe(figures: TransferFigures, what: string): string {
  const mb = (figures.bytes / 1e6).toFixed(1);
  return `${what} ${mb} MB, ${figures.files} files in ${(figures.durationMs / 1000).toFixed(2)} s (${figures.mbPerSecond} MB/s)`;
}
