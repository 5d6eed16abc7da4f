import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { type Logger, type NodeRecord, nodeAlivePath, type Versioned, volumePeerPrefix } from '@service-foundry/core';
import { pooledClientTlsOptions, type VolumeTlsMaterial } from '@service-foundry/volumes';

export interface NodeProberOptions {
  /** A probe of each node this often (one in flight per node at most). */
  intervalMs: number;
  /** A probe not answered within this counts as failed. */
  timeoutMs: number;
  /** Consecutive failed probes after which a node that answered before is silent. */
  failuresToSilence: number;
  /**
   * The scheduler's identity and the cluster CA (`readVolumeTls` of its etcd TLS files), for
   * `https://` volume servers; absent, only `http://` ones are probed.
   */
  tls: VolumeTlsMaterial | undefined;
  /** The registered nodes, read at every round. */
  nodes: () => Iterable<Versioned<NodeRecord>>;
  /** Told when a node turns silent or answers again: the controller looks at once. */
  onChange: () => void;
  log: Logger;
}

interface Probed {
  name: string;
  url: URL;
  /** The node key's create revision: a new registration starts a new record. */
  registration: string;
  /** Its own pool: a kept-alive connection is never shared with another node's name check. */
  agent: HttpAgent;
  answeredOnce: boolean;
  failures: number;
  /** Probes finished, however they ended. */
  probes: number;
  inFlight: boolean;
  silent: boolean;
  lastError: string;
}

/**
 * Asks every registered node's agent, a few times a second, whether it is alive
 * (`GET /alive` on its volume server, over mutual TLS, the answer taken only from a
 * certificate named for that node). A node is **silent** once it answered at least once
 * and then got no answer to `failuresToSilence` probes in a row: its host is off, its link
 * is down, or its agent is stopped. A refused or reset connection is not silence: the
 * host's kernel answered, so the host and its containers run and only the agent process
 * is gone (restarting, say); the lease decides then, as before.
 *
 * The controller fences a silent primary's node at once instead of waiting for its lease
 * to expire (docs/failover.md). Silence is a hint, never a proof: nothing is promoted on it
 * before the fence is confirmed.
 *
 * Why two failures and not one: a probe times out on a timer, and after this process was
 * itself paused the timer may fire before the answer already waiting is read; the next
 * probe, sent after the pause, is answered.
 */
export class NodeProber {
  readonly #options: NodeProberOptions;
  readonly #probed = new Map<string, Probed>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: NodeProberOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#round(), this.#options.intervalMs);
    this.#timer.unref();
    this.#round();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const probed of this.#probed.values()) probed.agent.destroy();
    this.#probed.clear();
  }

  /**
   * The silent nodes, when more nodes answer than are silent; otherwise none. A scheduler
   * cut off from most nodes (its own link, its own host starved) cannot tell who is gone.
   */
  silentNodes(): ReadonlySet<string> {
    const silent = new Set<string>();
    let answering = 0;
    for (const probed of this.#probed.values()) {
      if (probed.silent) silent.add(probed.name);
      else if (probed.answeredOnce && probed.failures === 0) answering++;
    }
    return silent.size > 0 && answering > silent.size ? silent : new Set();
  }

  /** One probed node's state, for tests and diagnostics. */
  describe(
    node: string,
  ): { answeredOnce: boolean; failures: number; probes: number; silent: boolean; lastError: string } | undefined {
    const probed = this.#probed.get(node);
    if (!probed) return undefined;
    const { answeredOnce, failures, probes, silent, lastError } = probed;
    return { answeredOnce, failures, probes, silent, lastError };
  }

  #round(): void {
    const seen = new Set<string>();
    for (const node of this.#options.nodes()) {
      const { name, volumeUrl } = node.value;
      const url = volumeUrl === undefined ? undefined : probeUrl(volumeUrl, this.#options.tls !== undefined);
      if (!url) continue;
      seen.add(name);
      let probed = this.#probed.get(name);
      if (!probed || probed.registration !== node.createRevision || probed.url.href !== url.href) {
        probed?.agent.destroy();
        probed = {
          name,
          url,
          registration: node.createRevision,
          agent: this.#newAgent(url),
          answeredOnce: false,
          failures: 0,
          probes: 0,
          inFlight: false,
          silent: false,
          lastError: '',
        };
        this.#probed.set(name, probed);
      }
      if (!probed.inFlight) this.#probe(probed);
    }
    for (const [name, probed] of this.#probed) {
      if (seen.has(name)) continue;
      probed.agent.destroy();
      this.#probed.delete(name);
    }
  }

  /** Kept-alive connections: a probe is one small request, not a TLS handshake. */
  #newAgent(url: URL): HttpAgent {
    const { tls } = this.#options;
    if (url.protocol === 'https:' && tls) return pooledClientTlsOptions(tls).agent;
    return new HttpAgent({ keepAlive: true, maxSockets: 1 });
  }

  #probe(probed: Probed): void {
    probed.inFlight = true;
    const { timeoutMs, tls } = this.#options;
    const expected = `${volumePeerPrefix}${probed.name}`;
    const send = probed.url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const settle = (outcome: ProbeOutcome, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      probed.inFlight = false;
      probed.probes++;
      if (this.#probed.get(probed.name) === probed) this.#record(probed, outcome, detail);
    };
    const req = send(probed.url, {
      method: 'GET',
      agent: probed.agent,
      ...(tls
        ? {
            checkServerIdentity: (host: string, cert: PeerCertificate) =>
              checkServerIdentity(host, cert) ??
              (cert.subject?.CN === expected
                ? undefined
                : new Error(`certificate names ${cert.subject?.CN}, not ${expected}`)),
          }
        : {}),
    });
    const timer = setTimeout(() => {
      settle('unanswered', `no answer within ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    req.on('response', (res) => {
      res.resume();
      settle(res.statusCode === 204 ? 'answered' : 'unanswered', `answered ${res.statusCode}`);
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      settle(hostAnswered.has(error.code ?? '') ? 'refused' : 'unanswered', error.message);
    });
    req.end();
  }

  #record(probed: Probed, outcome: ProbeOutcome, error: string): void {
    const { failuresToSilence, log, onChange } = this.#options;
    if (outcome === 'refused') {
      // The node's kernel answered for a process that is gone (restarting, killed): the
      // host and its containers are up, so this is no silence; its lease says the rest. A
      // node already silent stays so (a fence device that stops only the agent's process
      // leaves exactly this): only an answer ends silence.
      probed.lastError = error;
      if (!probed.silent) probed.failures = 0;
      return;
    }
    if (outcome === 'answered') {
      const wasSilent = probed.silent;
      probed.answeredOnce = true;
      probed.failures = 0;
      probed.silent = false;
      if (wasSilent) {
        log.warn({ node: probed.name }, 'node answers again');
        onChange();
      }
      return;
    }
    probed.failures++;
    probed.lastError = error;
    if (!probed.answeredOnce) {
      // Never answered: a firewall or a wrong address, not a failure. Said once per registration.
      if (probed.failures === failuresToSilence) {
        log.warn(
          { node: probed.name, url: probed.url.href, error },
          'node probes get no answer; only its lease tells whether it is alive (check the volume port is reachable from the scheduler)',
        );
      }
      return;
    }
    if (!probed.silent && probed.failures >= failuresToSilence) {
      probed.silent = true;
      log.warn({ node: probed.name, failures: probed.failures, error }, 'node is silent');
      onChange();
    }
  }
}

/**
 * How a probe ended: `answered` (204), `refused` (the host's kernel refused or reset the
 * connection), `unanswered` (a timeout, an unreachable host, any other answer).
 */
type ProbeOutcome = 'answered' | 'refused' | 'unanswered';

/** Errors that only a live host's kernel sends: a refused connection, a reset. */
const hostAnswered = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE']);

/** `<volumeUrl>/alive`, or undefined when the URL is not one this prober can ask. */
function probeUrl(volumeUrl: string, tls: boolean): URL | undefined {
  try {
    const url = new URL(nodeAlivePath, volumeUrl);
    if (url.protocol === 'https:' && tls) return url;
    if (url.protocol === 'http:') return url;
    return undefined;
  } catch {
    return undefined;
  }
}
