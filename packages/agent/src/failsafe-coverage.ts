import {
  type Etcd3,
  type FailsafePeers,
  type Keyspace,
  type Logger,
  type NodeRecord,
  type PlacementRecord,
  PrefixMirror,
  type PrefixSnapshot,
  placementCodec,
  readPrefix,
} from '@service-foundry/core';
import type { PeerCallAnswer } from '@service-foundry/volumes';
import type { AppliedReplicas } from './applied-replicas.js';
import { type FailsafeAnswer, failsafeCallName, failsafeEntry, maxFailsafeEntries } from './failsafe-promises.js';
import { coverOf, type FailsafeTiming } from './failsafe-rule.js';

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
  /** Instances with a replica on this node besides those in `applied` (their statuses carry peers too). */
  localInstances?: () => Iterable<string>;
  /**
   * The peers of `instanceId` were read anew: the statuses of its replicas that the same
   * read places on this node should say so (C2).
   */
  onPeersChanged?: (instanceId: string, placedHere: ReadonlySet<number>) => Promise<void>;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The primary side of the failsafe (failsafe-rule.ts P1–P7). While etcd answers it knows,
 * for every instance with a replica here, the nodes of its other replicas as read at a
 * revision (read again whenever a placement of the instance changes, or when a primary's
 * epoch is newer than the read), and each node's volume server URL; every status of this
 * agent carries that knowledge (C2). While cover is needed it asks every node holding
 * another replica of a local primary, one call per node and round, and remembers, per
 * instance and peer node, the send time of the latest request granted. Self-fencing asks
 * it until when each primary is covered.
 */
export class FailsafeCoverage {
  readonly #placements: PrefixMirror<PlacementRecord>;
  readonly #nodes: PrefixMirror<NodeRecord>;
  /** Node → volume server URL, never forgotten: node keys vanish with leases, addresses do not change. */
  readonly #urls = new Map<string, string>();
  /** Instance → peer node → send time of the latest granted request. */
  readonly #grants = new Map<string, Map<string, number>>();
  readonly #refusals = new Map<string, string>();
  /** Instance → the nodes of its other replicas, as a direct read found them (P5, P7, C2). */
  readonly #books = new Map<string, FailsafePeers>();
  /** Instances whose placements changed since their book was read. */
  readonly #stale = new Set<string>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #reading: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly deps: FailsafeCoverageDeps) {
    this.#now = deps.now ?? Date.now;
    this.#placements = new PrefixMirror(deps.client, placementCodec, deps.keys.placements(), deps.log);
    // The copy only says when to read again: the book comes from a read, whose revision is
    // known (a quiet watch's revision says nothing about the time since its last event).
    const prefix = deps.keys.placements();
    this.#placements.on('change', (changes) => {
      for (const { key } of changes) {
        const rest = key.slice(prefix.length);
        this.#stale.add(rest.slice(0, rest.lastIndexOf('/')));
      }
    });
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
    await this.#reading;
    await this.#placements.close();
  }

  /** P3–P5, P7: until when the primary of `instanceId` on this node is covered (ms since the epoch). */
  coveredUntil(instanceId: string): number {
    const grants = this.#grants.get(instanceId);
    return coverOf(
      this.#books.get(instanceId),
      this.#primaryEpoch(instanceId),
      (node) => grants?.get(node),
      this.deps.timing,
    );
  }

  /** What every status of `instanceId` says this agent knows of its other replicas (C2). */
  peersFor(instanceId: string): FailsafePeers {
    // Books are replaced whole by each read, never changed in place: one may be handed out.
    return this.#books.get(instanceId) ?? { nodes: [], revision: '0' };
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

  /** The nodes holding the other replicas of `instanceId`, as last read from etcd. */
  peersOf(instanceId: string): readonly string[] {
    return this.#books.get(instanceId)?.nodes ?? [];
  }

  /** The newest epoch of a local primary of `instanceId` (0: none here). */
  #primaryEpoch(instanceId: string): number {
    let epoch = 0;
    for (const entry of this.deps.applied.all()) {
      if (entry.ref.instanceId === instanceId && entry.mayBePrimary) epoch = Math.max(epoch, entry.epoch ?? 0);
    }
    return epoch;
  }

  /**
   * Reads the placements of every instance whose book is missing, changed or older than a
   * local primary's epoch. One instance at a time, never awaited by the asking rounds: while
   * etcd is gone a read waits for its deadline, and the last book stays (P5 keeps working on
   * what was read while etcd answered).
   */
  async #readBooks(): Promise<void> {
    const wanted = new Set<string>(this.deps.localInstances?.() ?? []);
    for (const entry of this.deps.applied.all()) wanted.add(entry.ref.instanceId);
    // The copy reports every instance's placements; only this node's are kept track of.
    for (const id of this.#books.keys()) if (!wanted.has(id)) this.#books.delete(id);
    for (const id of this.#stale) if (!wanted.has(id)) this.#stale.delete(id);
    for (const id of wanted) {
      if (this.#stopped) return;
      const book = this.#books.get(id);
      if (book && !this.#stale.has(id) && BigInt(book.revision) >= BigInt(this.#primaryEpoch(id))) continue;
      // Cleared before the read: a change arriving meanwhile marks it again.
      this.#stale.delete(id);
      let read: PrefixSnapshot<PlacementRecord>;
      try {
        read = await readPrefix(this.deps.client, placementCodec, this.deps.keys.instancePlacements(id), this.deps.log);
      } catch (error) {
        this.#stale.add(id);
        this.deps.log.debug(
          { err: error, instanceId: id },
          'failsafe: reading placements failed; keeping the last read',
        );
        return;
      }
      // A placement that cannot be read names an unknown node: know nothing rather than too little.
      if (read.rejected.length > 0) {
        this.#books.delete(id);
        continue;
      }
      const nodes = new Set<string>();
      const placedHere = new Set<number>();
      for (const { value } of read.items.values()) {
        if (value.node === this.deps.node) placedHere.add(value.ordinal);
        else nodes.add(value.node);
      }
      this.#books.set(id, { nodes: [...nodes].sort(), revision: read.revision });
      await this.deps.onPeersChanged?.(id, placedHere);
    }
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
    this.#reading ??= this.#readBooks()
      .catch((error: unknown) => this.deps.log.error({ err: error }, 'failsafe: reading placements failed'))
      .finally(() => {
        this.#reading = undefined;
      });
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
