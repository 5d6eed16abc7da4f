import {
  type AssignmentRecord,
  ErrorCodes,
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Keyspace,
  type Logger,
  PrefixMirror,
  type PrimaryRecord,
  type RouteRecord,
  type SwitchoverRecord,
  type SwitchoverReplica,
  switchoverCodec,
  type Versioned,
} from '@service-foundry/core';
import {
  decideSwitchover,
  rejoiningPrimary,
  restartedPrimary,
  type SwitchoverDecision,
  stoppedPrimary,
} from './switchover.js';
import type { InstanceView } from './topology.js';

export interface SwitchoverStepInput {
  instance: Versioned<InstanceRecord>;
  view: InstanceView;
  route: RouteRecord | undefined;
  lastPrimaryPosition: bigint | undefined;
}

/**
 * Carries out the switchover state machine (switchover.ts) for the controller: one
 * decision per instance and pass, each write a transaction that compares the switchover
 * record, the primary key and every assignment it rewrites (I2), so a second controller or
 * a failover that moved on meanwhile makes it fail harmlessly and decide again.
 */
export class SwitchoverDriver {
  readonly #records: PrefixMirror<SwitchoverRecord>;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {
    this.#records = new PrefixMirror(client, switchoverCodec, keys.switchovers(), log);
  }

  async start(onChange: () => void): Promise<void> {
    await this.#records.start();
    this.#records.on('change', onChange);
  }

  close(): Promise<void> {
    return this.#records.close();
  }

  /** The instance's latest switchover record (the last one stays once finished). */
  latest(instanceId: string): Versioned<SwitchoverRecord> | undefined {
    return this.#records.items.get(this.keys.switchover(instanceId));
  }

  /**
   * Asks for a switchover on the controller's own account (an upgrade); the same
   * transaction as an operator's request: the primary key and the previous record unchanged.
   */
  async request(
    view: InstanceView,
    to: SwitchoverReplica,
    requestedBy: string,
    previous: Versioned<SwitchoverRecord> | undefined,
  ): Promise<boolean> {
    const primary = view.primary;
    if (!primary) return false;
    const id = view.instance.id;
    const now = new Date().toISOString();
    const record: SwitchoverRecord = {
      instanceId: id,
      from: { ordinal: primary.value.ordinal, node: primary.value.node },
      fromEpoch: Number(primary.modRevision),
      to,
      phase: 'requested',
      message: 'requested',
      requestedBy,
      requestedAt: now,
      updatedAt: now,
    };
    const key = this.keys.switchover(id);
    const res = await this.client
      .if(this.keys.primary(id), 'Mod', '==', primary.modRevision)
      .and(key, 'Mod', '==', previous?.modRevision ?? '0')
      .then(this.client.put(key).value(json(record)))
      .commit();
    if (res.succeeded) {
      await this.events.record(
        'switchover-requested',
        `switchover of "${view.instance.name}" from replica ${record.from.ordinal} on ${record.from.node} to replica ${to.ordinal} on ${to.node} requested by ${requestedBy}`,
        { instanceId: id, node: record.from.node },
      );
    }
    return res.succeeded;
  }

  /** True while a switchover of the instance is under way. */
  active(instanceId: string): boolean {
    const phase = this.#records.items.get(this.keys.switchover(instanceId))?.value.phase;
    return phase !== undefined && phase !== 'done' && phase !== 'failed';
  }

  async step(input: SwitchoverStepInput): Promise<void> {
    const id = input.instance.value.id;
    const record = this.#records.items.get(this.keys.switchover(id));
    if (!record || !this.active(id)) return;
    const decision = decideSwitchover({
      view: input.view,
      record: record.value,
      now: Date.now(),
      lastPrimaryPosition: input.lastPrimaryPosition,
      route: input.route,
    });
    await this.#apply(input, record, decision);
  }

  async #apply(
    input: SwitchoverStepInput,
    record: Versioned<SwitchoverRecord>,
    decision: SwitchoverDecision,
  ): Promise<void> {
    const { view } = input;
    const s = record.value;
    const id = s.instanceId;
    const now = new Date().toISOString();
    const recordKey = this.keys.switchover(id);
    const oldAssignment = view.assignments.get(s.from.ordinal);
    const oldKey = this.keys.assignment(s.from.node, id, s.from.ordinal);
    const where = { instanceId: id, node: s.from.node };
    switch (decision.kind) {
      case 'none':
        return;
      case 'wait':
        this.log.debug({ instanceId: id, phase: s.phase }, decision.reason);
        return;
      case 'stop': {
        if (!oldAssignment || !view.primary) return;
        const next: SwitchoverRecord = {
          ...s,
          phase: 'stopping',
          message: `stopping the old primary (replica ${s.from.ordinal} on ${s.from.node})`,
          stoppingAt: now,
          updatedAt: now,
        };
        const res = await this.client
          .if(recordKey, 'Mod', '==', record.modRevision)
          .and(this.keys.primary(id), 'Mod', '==', view.primary.modRevision)
          .and(oldKey, 'Mod', '==', oldAssignment.modRevision)
          .then(
            this.client.put(oldKey).value(json(stoppedPrimary(oldAssignment.value))),
            this.client.put(recordKey).value(json(next)),
          )
          .commit();
        if (!res.succeeded) return;
        this.log.info(where, next.message);
        await this.events.record(
          'switchover-stopping',
          `switchover to replica ${s.to.ordinal} on ${s.to.node}: ${next.message}; it accepts no new write`,
          where,
        );
        return;
      }
      case 'promote':
        return this.#promote(input, record, decision);
      case 'finish': {
        const stoppingAt = s.stoppingAt ? Date.parse(s.stoppingAt) : Date.parse(s.requestedAt);
        const gapMs = Math.max(0, Date.now() - stoppingAt);
        const next: SwitchoverRecord = {
          ...s,
          phase: 'done',
          message: `replica ${s.to.ordinal} on ${s.to.node} is primary (epoch ${s.toEpoch}); the old primary rejoins as a replica`,
          switchedAt: now,
          gapMs,
          updatedAt: now,
        };
        const res = await this.client
          .if(recordKey, 'Mod', '==', record.modRevision)
          .then(this.client.put(recordKey).value(json(next)))
          .commit();
        if (!res.succeeded) return;
        this.log.info({ instanceId: id, gapMs }, 'switchover complete');
        await this.events.record(
          'switchover-complete',
          `${next.message}; writes through the router paused at most ${(gapMs / 1000).toFixed(2)} s`,
          { instanceId: id, node: s.to.node },
        );
        return;
      }
      case 'fail': {
        const next: SwitchoverRecord = {
          ...s,
          phase: 'failed',
          code: decision.code,
          message: decision.reason,
          updatedAt: now,
        };
        let txn = this.client.if(recordKey, 'Mod', '==', record.modRevision);
        const puts = [this.client.put(recordKey).value(json(next))];
        const restart = decision.restart && oldAssignment?.value.desired === 'stopped';
        if (restart && oldAssignment) {
          txn = txn.and(oldKey, 'Mod', '==', oldAssignment.modRevision);
          puts.push(this.client.put(oldKey).value(json(restartedPrimary(oldAssignment.value))));
        }
        const res = await txn.then(...puts).commit();
        if (!res.succeeded) return;
        this.log.warn({ instanceId: id, code: decision.code }, `switchover failed: ${decision.reason}`);
        await this.events.record(
          decision.code === ErrorCodes.switchoverRefused ? 'switchover-refused' : 'switchover-failed',
          `${decision.reason}${restart ? '; the old primary starts again' : ''} (${decision.code})`,
          where,
        );
        return;
      }
    }
  }

  /**
   * First transaction: the primary key names the target (its mod revision is the new
   * epoch), the old primary is to be rebuilt as a replica. Second, at once rather than on
   * the next pass: every assignment at the new epoch — the target primary, the other
   * replicas streaming from the target (while it is still a standby: cascading, so they
   * are connected when it is promoted and a synchronous commit on it waits for no further
   * step). Should the second fail or never run, topology.ts writes the same on a later pass.
   */
  async #promote(
    input: SwitchoverStepInput,
    record: Versioned<SwitchoverRecord>,
    decision: Extract<SwitchoverDecision, { kind: 'promote' }>,
  ): Promise<void> {
    const { view } = input;
    const s = record.value;
    const id = s.instanceId;
    const primary = view.primary;
    const oldAssignment = view.assignments.get(s.from.ordinal);
    const targetAssignment = view.assignments.get(s.to.ordinal);
    if (!primary || !oldAssignment || !targetAssignment) return;
    const keys = this.keys;
    const primaryRecord: PrimaryRecord = {
      instanceId: id,
      ordinal: s.to.ordinal,
      node: s.to.node,
      host: decision.target.host ?? '',
      port: decision.target.port ?? 0,
      electedAt: new Date().toISOString(),
    };
    const oldKey = keys.assignment(s.from.node, id, s.from.ordinal);
    const rejoining = rejoiningPrimary(oldAssignment.value, input.instance.value.image);
    const promoting: SwitchoverRecord = {
      ...s,
      phase: 'promoting',
      message: `promoting replica ${s.to.ordinal} on ${s.to.node}`,
      stoppedAt: decision.stoppedAt,
      updatedAt: new Date().toISOString(),
    };
    const res = await this.client
      .if(keys.switchover(id), 'Mod', '==', record.modRevision)
      .and(keys.primary(id), 'Mod', '==', primary.modRevision)
      .and(oldKey, 'Mod', '==', oldAssignment.modRevision)
      .then(
        this.client.put(keys.primary(id)).value(json(primaryRecord)),
        this.client.put(oldKey).value(json(rejoining)),
        this.client.put(keys.switchover(id)).value(json(promoting)),
      )
      .commit();
    if (!res.succeeded) return;
    const revision = res.header.revision;
    const epoch = Number(revision);

    const targetKey = keys.assignment(s.to.node, id, s.to.ordinal);
    let txn = this.client
      .if(keys.switchover(id), 'Mod', '==', revision)
      .and(oldKey, 'Mod', '==', revision)
      .and(targetKey, 'Mod', '==', targetAssignment.modRevision);
    const puts = [
      this.client.put(keys.switchover(id)).value(json({ ...promoting, toEpoch: epoch })),
      this.client.put(oldKey).value(json({ ...rejoining, epoch })),
      this.client.put(targetKey).value(json({ ...targetAssignment.value, role: 'primary', epoch })),
    ];
    for (const r of decision.repoint) {
      const current = view.assignments.get(r.ordinal);
      if (!current) continue;
      const key = keys.assignment(r.node, id, r.ordinal);
      txn = txn.and(key, 'Mod', '==', current.modRevision);
      const next: AssignmentRecord = { ...current.value, upstream: { ...r.upstream }, epoch };
      puts.push(this.client.put(key).value(json(next)));
    }
    const assigned = await txn.then(...puts).commit();
    this.log.info(
      { instanceId: id, node: s.to.node, ordinal: s.to.ordinal, epoch, assigned: assigned.succeeded },
      decision.reason,
    );
    await this.events.record('switchover-promote', `${decision.reason}; promoting it (epoch ${epoch})`, {
      instanceId: id,
      node: s.to.node,
    });
  }
}
