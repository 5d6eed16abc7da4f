import { keySegmentPattern, type Logger, type Versioned, volumePeerPrefix } from '@service-foundry/core';
import type { PeerCall, PeerCallAnswer } from '@service-foundry/volumes';
import type { AppliedReplicas } from './applied-replicas.js';
import type { AssignmentRead } from './assignment-watcher.js';
import type { ReplicaRef } from './container-spec.js';
import { answerPromise, type LocalReplicaView } from './failsafe-rule.js';

/** The peer call a primary makes to every node holding another replica of its instances. */
export const failsafeCallName = 'failsafe';

/** How many instances one call may ask about. */
export const maxFailsafeEntries = 200;

const entryPattern = new RegExp(`^(${keySegmentPattern.slice(1, -1)}):([1-9][0-9]{0,15})$`);

/** `<instanceId>:<epoch>`, the form of each `p` parameter of a failsafe call. */
export function failsafeEntry(instanceId: string, epoch: number): string {
  return `${instanceId}:${epoch}`;
}

/** What a node answers to a failsafe call. */
export interface FailsafeAnswer {
  promiseMs: number;
  granted: string[];
  refused: Record<string, string>;
}

interface GivenPromise {
  until: number;
  to: string;
  epoch: number;
  /** When this run of extensions began (the first grant after none was in force). */
  since: number;
}

export interface FailsafePromisesDeps {
  applied: AppliedReplicas;
  assignmentOf: (ref: ReplicaRef) => Versioned<AssignmentRead> | undefined;
  promiseMs: number;
  log: Logger;
  /**
   * R6: the address of a node (from its volume server URL), where replicas stream from node
   * addresses; undefined on one shared Docker Engine (container addresses: not checked).
   * @default undefined
   */
  addressOfNode?: ((node: string) => string | undefined) | undefined;
  /**
   * G3: when the node's current fence record says `fenced`, the time it was confirmed
   * (ms); a promise to a primary on a node fenced since the promise began is over, since
   * that primary is powered off. @default undefined (promises always run their course)
   */
  fencedAt?: ((node: string) => number | undefined) | undefined;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The replica side of the failsafe (failsafe-rule.ts R1–R5, G1, G2): answers a primary's
 * call for each instance it names, remembers every promise given, and holds back any claim
 * to become a primary of a promised instance until the promise has run out. A restarted
 * agent remembers nothing, so it holds every claim for one promise's length after start.
 */
export class FailsafePromises {
  readonly #promises = new Map<string, GivenPromise>();
  readonly #now: () => number;
  readonly #startedAt: number;

  constructor(private readonly deps: FailsafePromisesDeps) {
    this.#now = deps.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  /** The peer call handler (`POST /calls/failsafe?p=<instanceId>:<epoch>&p=…`). */
  answer(call: PeerCall): PeerCallAnswer {
    const entries = call.params.getAll('p');
    if (entries.length === 0 || entries.length > maxFailsafeEntries || [...call.params.keys()].some((k) => k !== 'p')) {
      return {
        status: 400,
        body: { error: `a failsafe call names 1–${maxFailsafeEntries} instances as p=<id>:<epoch>` },
      };
    }
    const requests: Array<{ instanceId: string; epoch: number }> = [];
    for (const entry of entries) {
      const match = entryPattern.exec(entry);
      if (!match) return { status: 400, body: { error: `not <instanceId>:<epoch>: ${entry.slice(0, 80)}` } };
      requests.push({ instanceId: match[1] as string, epoch: Number(match[2]) });
    }
    const now = this.#now();
    const answer: FailsafeAnswer = { promiseMs: this.deps.promiseMs, granted: [], refused: {} };
    const { addressOfNode } = this.deps;
    const askerNode = call.peer.startsWith(volumePeerPrefix) ? call.peer.slice(volumePeerPrefix.length) : call.peer;
    const asker = addressOfNode ? { node: askerNode, address: addressOfNode(askerNode) } : undefined;
    for (const request of requests) {
      const verdict = answerPromise(
        { ...request, ...(asker ? { asker } : {}) },
        this.#localReplicas(request.instanceId),
      );
      if (!verdict.grant) {
        answer.refused[request.instanceId] = verdict.reason;
        continue;
      }
      const until = now + this.deps.promiseMs;
      const previous = this.#promises.get(request.instanceId);
      // Only ever extended: a promise given is kept to its end.
      if (!previous || previous.until < until) {
        if (!previous || previous.until < now) {
          this.deps.log.info(
            { instanceId: request.instanceId, to: call.peer, epoch: request.epoch, promiseMs: this.deps.promiseMs },
            'failsafe: promised the primary not to take over (it asks while its lease is late)',
          );
        }
        const since = previous && previous.until >= now ? previous.since : now;
        this.#promises.set(request.instanceId, { until, to: call.peer, epoch: request.epoch, since });
      }
      answer.granted.push(request.instanceId);
    }
    return { status: 200, body: answer };
  }

  /** Instances promised now (metrics). */
  active(): number {
    const now = this.#now();
    return [...this.#promises.values()].filter((promise) => promise.until > now).length;
  }

  /** G1/G2: why this node may not become a primary of `instanceId` now, and for how long. */
  hold(instanceId: string): { reason: string; remainingMs: number } | undefined {
    const now = this.#now();
    const promise = this.#promises.get(instanceId);
    if (promise && promise.until > now) {
      if (!this.#askerFenced(promise)) {
        return {
          reason: `promised ${promise.to || 'the primary'} (epoch ${promise.epoch}) not to take over for another ${promise.until - now} ms`,
          remainingMs: promise.until - now,
        };
      }
      this.deps.log.warn(
        { instanceId, to: promise.to, epoch: promise.epoch },
        'failsafe: promise over before its end, the primary it was given to is fenced (G3)',
      );
    }
    if (promise) this.#promises.delete(instanceId);
    const startedUntil = this.#startedAt + this.deps.promiseMs;
    if (now < startedUntil) {
      return {
        reason: `the agent started ${now - this.#startedAt} ms ago and may have forgotten a promise`,
        remainingMs: startedUntil - now,
      };
    }
    return undefined;
  }

  /**
   * The instances promised to a primary on `node`, when that node is now fenced (G3): the
   * agent looks at their claims again at once instead of when the promises would end.
   */
  promisedTo(node: string): string[] {
    return [...this.#promises.entries()]
      .filter(([, promise]) => promise.to === `${volumePeerPrefix}${node}` && promise.until > this.#now())
      .map(([instanceId]) => instanceId);
  }

  /** Whether the node a promise was given to was fenced since the promise began (G3). */
  #askerFenced(promise: GivenPromise): boolean {
    if (!promise.to.startsWith(volumePeerPrefix)) return false;
    const fencedAt = this.deps.fencedAt?.(promise.to.slice(volumePeerPrefix.length));
    return fencedAt !== undefined && fencedAt >= promise.since;
  }

  #localReplicas(instanceId: string): LocalReplicaView[] {
    return this.deps.applied
      .all()
      .filter((entry) => entry.ref.instanceId === instanceId)
      .map((entry) => {
        const read = this.deps.assignmentOf(entry.ref)?.value;
        return {
          ordinal: entry.ref.ordinal,
          role: entry.role,
          epoch: entry.epoch,
          mayBePrimary: entry.mayBePrimary,
          upstreamHost: entry.upstream?.host,
          assigned:
            read === undefined
              ? undefined
              : read.ok
                ? { role: read.record.role, epoch: read.record.epoch }
                : 'unreadable',
        };
      });
  }
}
