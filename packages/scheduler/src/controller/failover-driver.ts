import {
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Logger,
  type NodeFenceRecord,
  type PrefixMirror,
  type PrimaryRecord,
  type ReplicaStatus,
  type TransferStatusRecord,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from '../cluster-state.js';
import { type EtcdMemberHosts, quorumAfterFencing, urlHost } from './etcd-quorum.js';
import {
  decideFailover,
  defaultFailoverPolicy,
  type Fencer,
  failoverSettleMs,
  lostTogether,
  lostTogetherWindowMs,
} from './failover.js';
import type { InstanceView } from './topology.js';

/** What the controller remembers of one instance's incident, between passes. */
interface FailoverMemory {
  suspectSince: number;
  fencingStarted: boolean;
  lastReason: string;
  /** Nodes lost their leases together with this primary's (latched: see failover.ts). */
  lostTogether: boolean;
  /** The incident began with the node going silent while it held its lease (latched). */
  silent: boolean;
  /** The primary key's revision when the incident began: unchanged at the end, nothing moved. */
  primaryRevision: string;
}

/** After a fence call that did not confirm the fence, the next one waits this long. */
const fenceAgainAfterMs = 1000;

/** A node this controller has never seen alive is not taken for lost before this much time passed. */
const startupGraceMs = 10_000;

export interface FailoverDriverDeps {
  client: Etcd3;
  state: ClusterState;
  fences: PrefixMirror<NodeFenceRecord>;
  events: EventLog;
  log: Logger;
  /** Runs fence devices; without one, fencing counts as failed (no devices configured). */
  fencer: Fencer | undefined;
  /** Asks for another pass (fencing finished, the settle time passed). */
  wake: () => void;
  /** A volume-shipping standby's last complete copy (relocator's transfers). */
  transferOf: (instanceId: string, ordinal: number, node: string) => TransferStatusRecord | undefined;
  /** Registered nodes whose agents stopped answering (node-prober.ts). @default none */
  silentNodes?: () => ReadonlySet<string>;
}

/**
 * Carries out the failover state machine (failover.ts) for the controller: remembers each
 * incident (when the primary's node was first seen lost, the fencing under way), runs the
 * fence levels, promotes with a transaction that compares the old primary key and the
 * absence of its node's key, and says each step once on the instance, in the log and in
 * the events.
 */
export class FailoverDriver {
  readonly #incidents = new Map<string, FailoverMemory>();
  readonly #startedAt = Date.now();

  constructor(private readonly deps: FailoverDriverDeps) {}

  /**
   * One step for an instance whose primary's node is not live: its lease is gone, or
   * (`silent`) it still holds it but its agent stopped answering the probes.
   */
  async step(
    instance: Versioned<InstanceRecord>,
    view: InstanceView,
    lastPrimaryPosition: bigint | undefined,
    silent = false,
  ) {
    const { state, events, log, fences, transferOf } = this.deps;
    const id = instance.value.id;
    const primary = view.primary as Versioned<PrimaryRecord>;
    const node = primary.value.node;
    if (!state.lastKnownNodes.has(node) && Date.now() - this.#startedAt < startupGraceMs) {
      // Not lost: not registered yet. A controller (re)started with the cluster has never
      // seen this node alive, and fencing a node whose agent is still starting would kill it.
      return;
    }
    let memory = this.#incidents.get(id);
    if (!memory) {
      // The settle row of decideFailover waits this long: look again right after it, not
      // at the next periodic pass.
      setTimeout(() => this.deps.wake(), failoverSettleMs + 10).unref();
      memory = {
        suspectSince: Date.now(),
        fencingStarted: false,
        lastReason: '',
        lostTogether: false,
        silent,
        primaryRevision: primary.modRevision,
      };
      this.#incidents.set(id, memory);
      log.warn({ instanceId: id, node, silent }, 'primary node lost; failover starts');
      const how = silent ? 'stopped answering (its lease has not expired yet)' : 'stopped renewing its lease';
      await events.record('primary-lost', `primary node ${node} ${how}`, { instanceId: id, node });
    }
    // Latched: as the other nodes come back one by one, the count falls, and the primary's
    // node would then look lost alone just before it registers again too.
    if (!memory.silent && !memory.fencingStarted && !memory.lostTogether) {
      memory.lostTogether = lostTogether(state.lostTogether(node, lostTogetherWindowMs));
    }
    const decision = decideFailover({
      view,
      policy: instance.value.failover ?? defaultFailoverPolicy,
      suspectSince: memory.suspectSince,
      now: Date.now(),
      fence: fences.items.get(state.keys.fence(node)),
      fencingStarted: memory.fencingStarted,
      lastPrimaryPosition,
      snapshotOf: (ordinal, node) => transferOf(id, ordinal, node),
      lostTogether: memory.lostTogether,
      silent: memory.silent,
    });
    switch (decision.kind) {
      case 'none':
        return;
      case 'fence': {
        const quorum = await this.#etcdQuorumAfterFencing(node);
        if (!quorum.ok) {
          await this.#say(instance, memory, `failover blocked: ${quorum.reason}`, 'error');
          return;
        }
        memory.fencingStarted = true;
        const settled = memory;
        // Not awaited: a fence call takes seconds; its end wakes the controller for the next step.
        const why = memory.silent ? 'stopped answering' : 'lost its lease';
        void this.#fence(node, `primary of ${instance.value.name} ${why}`).then((fenced) => {
          const next = () => {
            settled.fencingStarted = false;
            this.deps.wake();
          };
          // A fence that did not confirm (etcd without a leader just after a member's node
          // went dark, the devices failing) is not asked for again in a tight loop.
          if (fenced) next();
          else setTimeout(next, fenceAgainAfterMs).unref();
        });
        await this.#say(instance, memory, `failover: fencing node ${node}`, 'warn');
        return;
      }
      case 'revoke':
        await this.#say(instance, memory, `failover: ${decision.reason}`, 'warn');
        await this.#revoke(node);
        return;
      case 'wait':
        await this.#say(instance, memory, `failover: ${decision.reason}`, 'info');
        return;
      case 'blocked':
        await this.#say(instance, memory, decision.reason, 'error');
        return;
      case 'promote':
        await this.#promote(instance, primary, decision.ordinal, decision.node, decision.status, decision.reason);
    }
  }

  /**
   * The primary's node is live: forgets the instance's incident, if there was one, and says
   * the failover is complete. True when it did (the pass ends there).
   */
  async settle(instance: Versioned<InstanceRecord>, primary: Versioned<PrimaryRecord> | undefined): Promise<boolean> {
    const { client, state, events } = this.deps;
    const id = instance.value.id;
    const memory = this.#incidents.get(id);
    this.#incidents.delete(id);
    if (!memory || !primary) return false;
    const unchanged = memory.primaryRevision === primary.modRevision;
    await events.record(
      unchanged ? 'failover-cancelled' : 'failover-complete',
      unchanged
        ? `node ${primary.value.node} is back before anything moved; primary unchanged`
        : `primary is replica ${primary.value.ordinal} on ${primary.value.node}`,
      { instanceId: id },
    );
    const key = state.keys.instance(id);
    const message = `primary on ${primary.value.node}`;
    await client
      .if(key, 'Mod', '==', instance.modRevision)
      .then(client.put(key).value(json({ ...instance.value, message })))
      .commit();
    return true;
  }

  /**
   * Revokes a fenced node's lease: its node key and statuses go at once, as they would at
   * the TTL. Agents then read positions promptly (the primary's node is unregistered), and
   * the promotion's check that the node key is absent holds.
   */
  async #revoke(node: string): Promise<void> {
    const { client, state, events, log } = this.deps;
    const lease = state.nodes.items.get(state.keys.node(node))?.lease;
    if (!lease || lease === '0') return;
    try {
      await client.leaseClient.leaseRevoke({ ID: lease });
    } catch (error) {
      // Already gone (expired meanwhile) is the same outcome; anything else retries next pass.
      log.warn({ err: error, node, lease }, 'revoking the fenced node lease failed');
      return;
    }
    log.warn({ node, lease }, 'fenced node lease revoked');
    await events.record('node-lease-revoked', `lease of fenced node ${node} revoked (it stopped answering)`, { node });
    this.deps.wake();
  }

  /** Whether etcd keeps its quorum once `node` is off (etcd-quorum.ts); the member list read now. */
  async #etcdQuorumAfterFencing(node: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const { client, state, fences } = this.deps;
    let members: EtcdMemberHosts[];
    try {
      const listed = await client.cluster.memberList({});
      members = (listed.members ?? []).map((m) => ({
        name: m.name || m.ID,
        hosts: [...(m.peerURLs ?? []), ...(m.clientURLs ?? [])].flatMap((url) => urlHost(url) ?? []),
      }));
    } catch (error) {
      return { ok: false, reason: `the etcd member list could not be read (${(error as Error).message})` };
    }
    const silent = this.deps.silentNodes?.() ?? new Set<string>();
    const upNodes = new Set<string>();
    for (const item of state.nodes.items.values()) {
      const name = item.value.name;
      if (silent.has(name) || fences.items.get(state.keys.fence(name))?.value.state === 'fenced') continue;
      upNodes.add(name);
    }
    const nodeAddresses = new Map([...state.lastKnownNodes].map(([name, record]) => [name, record.address]));
    return quorumAfterFencing({ members, nodeAddresses, upNodes, fencing: node });
  }

  /** Runs the node's fence levels; true once the node is confirmed fenced. */
  #fence(node: string, reason: string): Promise<boolean> {
    const { fencer, log } = this.deps;
    const run = fencer
      ? fencer.fence(node, reason)
      : Promise.resolve({ fenced: false, detail: 'no fencer configured' });
    return run.then(
      (result) => {
        log[result.fenced ? 'info' : 'error']({ node, detail: result.detail }, 'fencing finished');
        return result.fenced;
      },
      (error: unknown) => {
        log.error({ err: error, node }, 'fencing threw');
        return false;
      },
    );
  }

  async #promote(
    instance: Versioned<InstanceRecord>,
    old: Versioned<PrimaryRecord>,
    ordinal: number,
    node: string,
    status: ReplicaStatus | undefined,
    reason: string,
  ): Promise<void> {
    const { client, state, events, log } = this.deps;
    const keys = state.keys;
    const id = instance.value.id;
    const record: PrimaryRecord = {
      instanceId: id,
      ordinal,
      node,
      host: status?.host ?? '',
      port: status?.port ?? 0,
      electedAt: new Date().toISOString(),
    };
    // C1 (agent failsafe-rule.ts): only while the old primary's node is gone. An agent that
    // registers again reads primary/<id> after its node key is back, so it sees any
    // promotion that committed, and none can commit after.
    const res = await client
      .if(keys.primary(id), 'Mod', '==', old.modRevision)
      .and(keys.node(old.value.node), 'Create', '==', 0)
      .then(client.put(keys.primary(id)).value(json(record)))
      .commit();
    if (!res.succeeded) {
      log.warn(
        { instanceId: id, node: old.value.node },
        'failover: not promoting, the primary moved or its node registered again meanwhile',
      );
      return;
    }
    log.warn({ instanceId: id, node, ordinal, epoch: res.header.revision, reason }, 'failover: promoting');
    await events.record('failover-promote', `${reason}; promoting it (epoch ${res.header.revision})`, {
      instanceId: id,
      node,
    });
  }

  /** Puts a failover message on the instance (shown by `sf service`) and in the log, once per change. */
  async #say(
    instance: Versioned<InstanceRecord>,
    memory: FailoverMemory,
    message: string,
    level: 'info' | 'warn' | 'error',
  ): Promise<void> {
    const { client, state, events, log } = this.deps;
    if (memory.lastReason === message) return;
    memory.lastReason = message;
    log[level]({ instanceId: instance.value.id }, message);
    await events.record(level === 'error' ? 'failover-blocked' : 'failover', message, {
      instanceId: instance.value.id,
    });
    const key = state.keys.instance(instance.value.id);
    await client
      .if(key, 'Mod', '==', instance.modRevision)
      .then(client.put(key).value(json({ ...instance.value, message })))
      .commit();
  }
}
