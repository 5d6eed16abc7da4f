import {
  type Etcd3,
  type Keyspace,
  type Logger,
  type NodeRecord,
  type PlacementRecord,
  PrefixMirror,
  placementCodec,
} from '@service-foundry/core';
import type { PeerCallAnswer } from '@service-foundry/volumes';
import type { AppliedReplicas } from './applied-replicas.js';
import { type FailsafeAnswer, failsafeCallName, failsafeEntry, maxFailsafeEntries } from './failsafe-promises.js';
import { coveredUntil, type FailsafeTiming } from './failsafe-rule.js';

export interface FailsafeCoverageDeps {
  client: Etcd3;
  keys: Keyspace;
  /** The agent's copy of `nodes/`, started before `start()` and closed by its owner. */
  nodes: PrefixMirror<NodeRecord>;
  applied: AppliedReplicas;
  node: string;
  log: Logger;
  timing: FailsafeTiming & {
    /** Pause between two rounds of calls while cover is needed. */
    askIntervalMs: number;
  };
  /** P2: true while the lease is older than `askAfterMs`, or was lost and not re-verified. */
  needsCover: () => boolean;
  /** One failsafe call to the volume server at `url` (volumes' callPeer, signed, mutual TLS). */
  call: (url: string, name: string, params: URLSearchParams) => Promise<PeerCallAnswer>;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The primary side of the failsafe (failsafe-rule.ts P1–P5). While etcd answers it keeps a
 * copy of every placement and of each node's volume server URL (watches); while cover is
 * needed it asks every node holding another replica of a local primary, one call per node
 * and round, and remembers, per instance and peer node, the send time of the latest
 * request granted. Self-fencing asks it until when each primary is covered.
 */
export class FailsafeCoverage {
  readonly #placements: PrefixMirror<PlacementRecord>;
  readonly #nodes: PrefixMirror<NodeRecord>;
  /** Node → volume server URL, never forgotten: node keys vanish with leases, addresses do not change. */
  readonly #urls = new Map<string, string>();
  /** Instance → peer node → send time of the latest granted request. */
  readonly #grants = new Map<string, Map<string, number>>();
  readonly #refusals = new Map<string, string>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly deps: FailsafeCoverageDeps) {
    this.#now = deps.now ?? Date.now;
    this.#placements = new PrefixMirror(deps.client, placementCodec, deps.keys.placements(), deps.log);
    this.#nodes = deps.nodes;
    this.#nodes.on('change', (changes) => {
      for (const change of changes) if (change.current) this.#remember(change.current.value);
    });
  }

  async start(): Promise<void> {
    await this.#placements.start();
    for (const node of this.#nodes.items.values()) this.#remember(node.value);
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    await this.#placements.close();
  }

  /** P3/P5: until when the primary of `instanceId` on this node is covered (ms since the epoch). */
  coveredUntil(instanceId: string): number {
    const peers = this.peersOf(instanceId);
    const grants = this.#grants.get(instanceId);
    return coveredUntil(
      peers.map((node) => ({ sentAt: grants?.get(node) })),
      this.deps.timing,
    );
  }

  /** A node's address, from its volume server URL as last seen (R6). */
  addressOf(node: string): string | undefined {
    const url = this.#urls.get(node);
    if (!url) return undefined;
    try {
      return new URL(url).hostname;
    } catch {
      return undefined;
    }
  }

  /** The nodes holding the other replicas of `instanceId`, as last seen in etcd. */
  peersOf(instanceId: string): string[] {
    const prefix = this.deps.keys.instancePlacements(instanceId);
    const nodes = new Set<string>();
    for (const [key, placement] of this.#placements.items) {
      if (key.startsWith(prefix) && placement.value.node !== this.deps.node) nodes.add(placement.value.node);
    }
    return [...nodes];
  }

  #remember(node: NodeRecord): void {
    if (node.volumeUrl) this.#urls.set(node.name, node.volumeUrl);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#round = this.#ask()
        .catch((error: unknown) => this.deps.log.error({ err: error }, 'failsafe round failed'))
        .finally(() => this.#schedule(this.deps.timing.askIntervalMs));
    }, delayMs);
  }

  async #ask(): Promise<void> {
    if (!this.deps.needsCover()) {
      // Grants from an earlier outage must never cover a later one.
      this.#grants.clear();
      this.#refusals.clear();
      return;
    }
    const byNode = new Map<string, string[]>();
    for (const entry of this.deps.applied.all()) {
      if (!entry.mayBePrimary || entry.epoch === undefined || entry.epoch <= 0) continue;
      for (const node of this.peersOf(entry.ref.instanceId)) {
        const entries = byNode.get(node) ?? [];
        entries.push(failsafeEntry(entry.ref.instanceId, entry.epoch));
        byNode.set(node, entries);
      }
    }
    await Promise.all(
      [...byNode].map(async ([node, entries]) => {
        for (let i = 0; i < entries.length; i += maxFailsafeEntries) {
          await this.#askNode(node, entries.slice(i, i + maxFailsafeEntries));
        }
      }),
    );
  }

  async #askNode(node: string, entries: string[]): Promise<void> {
    const url = this.#urls.get(node);
    if (!url) return;
    const sentAt = this.#now();
    let answer: PeerCallAnswer;
    try {
      answer = await this.deps.call(
        url,
        failsafeCallName,
        new URLSearchParams(entries.map((e): [string, string] => ['p', e])),
      );
    } catch (error) {
      this.#refused(node, entries, `unreachable: ${(error as Error).message}`);
      return;
    }
    const body = answer.body as Partial<FailsafeAnswer> | undefined;
    if (answer.status !== 200 || !Array.isArray(body?.granted)) {
      this.#refused(node, entries, `answered ${answer.status}`);
      return;
    }
    const granted = new Set(body.granted);
    for (const entry of entries) {
      const instanceId = entry.slice(0, entry.lastIndexOf(':'));
      if (granted.has(instanceId)) {
        const grants = this.#grants.get(instanceId) ?? new Map<string, number>();
        grants.set(node, Math.max(grants.get(node) ?? 0, sentAt));
        this.#grants.set(instanceId, grants);
        this.#refusals.delete(`${instanceId}/${node}`);
      } else {
        this.#refused(node, [entry], body.refused?.[instanceId] ?? 'not granted');
      }
    }
  }

  /** A refusal ends that peer's cover at once; an unreachable peer's runs out on its own. */
  #refused(node: string, entries: string[], reason: string): void {
    for (const entry of entries) {
      const instanceId = entry.slice(0, entry.lastIndexOf(':'));
      if (!reason.startsWith('unreachable')) this.#grants.get(instanceId)?.delete(node);
      const key = `${instanceId}/${node}`;
      if (this.#refusals.get(key) === reason) continue;
      this.#refusals.set(key, reason);
      this.deps.log.warn({ instanceId, peer: node, reason }, 'failsafe: a replica did not promise');
    }
  }
}
