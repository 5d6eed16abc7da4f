import { createHash } from 'node:crypto';
import { eldestFirst, type Keyspace, type SchedulerMemberRecord, type Versioned } from '@service-foundry/core';

/** The watched `schedulers/` prefix (a PrefixMirror). */
export interface MemberList {
  readonly items: ReadonlyMap<string, Versioned<SchedulerMemberRecord>>;
  readonly revision: string;
}

export type SchedulerMode = 'active-active' | 'leader';

/**
 * Rendezvous weight of a member for an instance: 32 bits of SHA-256. A cheap hash such as
 * FNV-1a mixes so poorly over names differing in a suffix that one member can win every
 * instance; weights are cached per membership, so the cost is paid once per instance.
 */
function weight(member: string, instanceId: string): number {
  return createHash('sha256').update(member).update('\u0000').update(instanceId).digest().readUInt32BE(0);
}

/**
 * Which scheduler works on which instance, from the live members under `schedulers/`.
 *
 * - `active-active`: rendezvous hashing — each instance belongs to the member with the
 *   highest hash(member, instance). A member joining or leaving moves only its share.
 * - `leader`: the eldest member (lowest create revision) does everything; the others
 *   stand by and take over when its lease expires.
 *
 * Ownership only keeps schedulers from working on the same replicas; it is not needed for
 * safety. Two schedulers that briefly both think they own an instance (membership is
 * seen through watches, at slightly different times) race in etcd, and one transaction
 * loses its comparisons.
 */
export class Ownership {
  #cachedAt = '';
  #members: Array<Versioned<SchedulerMemberRecord>> = [];
  #owners = new Map<string, boolean>();
  #registered = false;
  #eldest = false;

  constructor(
    private readonly members: MemberList,
    private readonly keys: Keyspace,
    private readonly name: string,
    private readonly mode: SchedulerMode,
  ) {}

  #refresh(): void {
    if (this.#cachedAt === this.members.revision && this.#members.length === this.members.items.size) return;
    this.#cachedAt = this.members.revision;
    this.#members = eldestFirst(this.members.items.values());
    this.#owners.clear();
    this.#registered = this.members.items.has(this.keys.scheduler(this.name));
    this.#eldest = this.#members[0]?.value.name === this.name;
  }

  /** Whether this scheduler is registered at all (a new or paused one may not be yet). */
  registered(): boolean {
    this.#refresh();
    return this.#registered;
  }

  /** The eldest member does the cluster-wide chores (drain reports, stale status cleanup). */
  isEldest(): boolean {
    this.#refresh();
    return this.#eldest;
  }

  /** True for a standby (leader mode, not the eldest) and for a scheduler not registered yet. */
  ownsNothing(): boolean {
    this.#refresh();
    return !this.#registered || (this.mode === 'leader' && !this.#eldest);
  }

  owns(instanceId: string): boolean {
    this.#refresh();
    if (!this.registered()) return false;
    if (this.mode === 'leader') return this.isEldest();
    const cached = this.#owners.get(instanceId);
    if (cached !== undefined) return cached;
    let best = '';
    let bestHash = -1;
    for (const { value: member } of this.#members) {
      const hash = weight(member.name, instanceId);
      if (hash > bestHash || (hash === bestHash && member.name < best)) {
        best = member.name;
        bestHash = hash;
      }
    }
    const mine = best === this.name;
    this.#owners.set(instanceId, mine);
    return mine;
  }

  /**
   * This scheduler's slice of the node ring: its index among the active members and how
   * many there are. Schedulers start their node scans in their own slice, so concurrent
   * schedulers rarely want the same node's lock at the same moment.
   */
  slice(): { index: number; of: number } {
    this.#refresh();
    if (this.mode === 'leader') return { index: 0, of: 1 };
    const index = this.#members.findIndex((m) => m.value.name === this.name);
    return index < 0 ? { index: 0, of: 1 } : { index, of: this.#members.length };
  }

  /** Live member names, eldest first. */
  memberNames(): string[] {
    this.#refresh();
    return this.#members.map((m) => m.value.name);
  }
}
