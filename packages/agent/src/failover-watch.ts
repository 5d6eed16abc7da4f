import {
  type Etcd3,
  type Keyspace,
  type Logger,
  type NodeRecord,
  PrefixMirror,
  type PrimaryRecord,
  primaryCodec,
} from '@service-foundry/core';

/**
 * How long after its node lost its lease a primary's replicas stay prompt: beyond the
 * default fencing timeout (60 s), so a fenced failover still finds positions read after
 * the fence; a failover blocked longer than that goes back to the normal pace.
 */
export const promptForMs = 90_000;

/**
 * Failovers that may be coming, as an agent needs them. The controller promotes the most
 * advanced replica, counting only positions read after the primary's node lost its lease
 * (and after its fence), and waits at most 3 s for them. Positions do not move once the
 * primary is gone, and an unchanged one is written only every refresh (5 s by default):
 * so while an instance's primary names a node that is not registered, the position
 * reporter reads this node's replicas of it promptly and writes every reading. Reads
 * `primary/` and `nodes/`, which the agent's etcd role may read.
 */
export class FailoverWatch {
  readonly #primaries: PrefixMirror<PrimaryRecord>;
  readonly #nodes: PrefixMirror<NodeRecord>;
  /** Node → when this watch saw it without a registration. */
  readonly #lostAt = new Map<string, number>();

  /** `nodes`: the agent's copy of `nodes/`, started before `start()` and closed by its owner. */
  constructor(
    client: Etcd3,
    private readonly keys: Keyspace,
    log: Logger,
    nodes: PrefixMirror<NodeRecord>,
  ) {
    this.#primaries = new PrefixMirror(client, primaryCodec, keys.primaries(), log);
    this.#nodes = nodes;
  }

  /** `onSuspect`: a primary's node is newly without a registration (a reading is wanted now). */
  async start(onSuspect: () => void): Promise<void> {
    const refresh = () => {
      if (this.#refresh()) onSuspect();
    };
    this.#primaries.on('change', refresh);
    this.#nodes.on('change', refresh);
    await this.#primaries.start();
    refresh();
  }

  async stop(): Promise<void> {
    await this.#primaries.close();
  }

  /** True while the instance's primary is on a node without a registration, for up to 90 s. */
  prompt(instanceId: string, ordinal: number, now = Date.now()): boolean {
    const primary = this.#primaries.items.get(this.keys.primary(instanceId))?.value;
    if (!primary || primary.ordinal === ordinal) return false;
    const lostAt = this.#lostAt.get(primary.node);
    return lostAt !== undefined && now - lostAt < promptForMs;
  }

  /** True while any primary's node is without a registration, for up to 90 s. */
  anyPrompt(now = Date.now()): boolean {
    for (const lostAt of this.#lostAt.values()) if (now - lostAt < promptForMs) return true;
    return false;
  }

  /** Tracks the primaries' nodes without a registration; true when one is newly so. */
  #refresh(now = Date.now()): boolean {
    const registered = new Set([...this.#nodes.items.values()].map((n) => n.value.name));
    const lost = new Set<string>();
    for (const { value } of this.#primaries.items.values()) if (!registered.has(value.node)) lost.add(value.node);
    let added = false;
    for (const node of lost) {
      if (this.#lostAt.has(node)) continue;
      this.#lostAt.set(node, now);
      added = true;
    }
    for (const node of [...this.#lostAt.keys()]) if (!lost.has(node)) this.#lostAt.delete(node);
    return added;
  }
}
