import { type ChildProcess, spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '@service-foundry/core';
import { commandFailures, haproxyCommand, statFields, tableCounters } from './haproxy-cli.js';
import {
  cutCommand,
  holdAttemptMs,
  limitCommands,
  refusedKeys,
  renderHaproxyRouteConfig,
  type ServerSlot,
  sessionLogPrefix,
  switchCommands,
} from './haproxy-config.js';
import type { LimitTally } from './limit-tally.js';
import type { RouterMeter } from './metrics.js';
import { logThisFailure, retryDelayMs } from './retry-backoff.js';

/** Where a TCP route sends new sessions, and under which epoch. */
export interface TcpTarget {
  host: string;
  port: number;
  epoch: number;
}

/** What a route's process applies to new sessions. */
export interface RouteInForce {
  readonly target: TcpTarget;
  readonly maxSessions: number;
}

export interface HaproxyRouteOptions {
  instanceId: string;
  listenHost: string;
  port: number;
  target: TcpTarget;
  maxSessions: number;
  /** What one client address may hold of `maxSessions` sessions. */
  perClient: (maxSessions: number) => number;
  connectTimeoutMs: number;
  holdWhileRefusedMs: number;
  idleTimeoutMs: number;
  /** A directory only the router can enter (0700): the config and the runtime API socket. */
  runDir: string;
  /** A name unique in `runDir`. */
  fileStem: string;
  tally: LimitTally;
  log: Logger;
  /** @default 'haproxy' (from PATH) */
  haproxyBinary?: string;
  /** @default undefined (no metrics) */
  meter?: RouterMeter;
}

/** The target backend's counters the metrics follow (see #readStats). */
const meteredCounters = ['stot', 'bin', 'bout', 'econ'] as const;

const startTimeoutMs = 10_000;
/** How long after one attempt period the old slot is cut: a held client's next attempt has gone to the new slot by then. */
const cutSlackMs = 50;
/**
 * How often the router reads each process's counters (sessions, bytes, refusals). Each read
 * is a runtime API connection and about 4 KiB of text to parse, ~0.5 ms of CPU between the
 * router and HAProxy: every 250 ms, the router with two idle routes used 16.5 ms of CPU a
 * second, every second 13 ms. Status and metrics are at most this far behind.
 */
const statsIntervalMs = 1000;
/** Sessions a process is sized for beyond its route limit: the limit can rise that far without a restart. */
const maxconnFloor = 1024;

/**
 * One TCP route served by its own HAProxy process. The process never reloads: a new epoch
 * goes to the spare server slot through the runtime API, and the old slot's sessions are
 * shut once the clients held on it have moved (see #cutLater); a changed limit is a
 * variable; removing the route stops the process, which cuts its sessions. The process
 * dies with the router (`setpriv --pdeathsig KILL`): no HAProxy outlives the control
 * plane that cuts its old epochs. A runtime API command that fails is never left half
 * done: the process is killed and started again on the current target.
 */
export class HaproxyRoute {
  readonly instanceId: string;
  readonly port: number;
  #target: TcpTarget;
  #maxSessions: number;
  #active: ServerSlot = 's1';
  #child: ChildProcess | undefined;
  /** Bumped on every start: commands queued for an earlier process are dropped. */
  #generation = 0;
  #ready: Promise<boolean> = Promise.resolve(false);
  #queue: Promise<void> = Promise.resolve();
  #listening = false;
  #lastError: string | null = null;
  #activeSessions = 0;
  readonly #refusedSeen = { routeLimit: 0, clientLimit: 0 };
  /** The backend counters as last read: the metrics get what grew since. */
  readonly #countersSeen = { stot: 0, bin: 0, bout: 0, econ: 0 };
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** What the running process applies to new sessions: undefined until it is ready, and while none runs. */
  #inForce: RouteInForce | undefined;
  /** The current target cannot be put in a config: no process runs until one that can arrives. */
  #unservable = false;
  #readingStats = false;
  /** The old slot of the last switch, cut once the clients held on it have moved (see retarget). */
  #pendingCut: { slot: ServerSlot; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly options: HaproxyRouteOptions) {
    this.instanceId = options.instanceId;
    this.port = options.port;
    this.#target = options.target;
    this.#maxSessions = options.maxSessions;
  }

  get listening(): boolean {
    return this.#listening;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /**
   * The target and limit new sessions get now: what the process was started with or a
   * runtime command has applied since, which trails `retarget` by the command's few
   * milliseconds. Undefined while no process serves.
   */
  get inForce(): RouteInForce | undefined {
    return this.#inForce;
  }

  /** Open sessions as the process last reported them (every second). */
  get activeSessions(): number {
    return this.#activeSessions;
  }

  get #socketPath(): string {
    return join(this.options.runDir, `${this.options.fileStem}.sock`);
  }

  get #configPath(): string {
    return join(this.options.runDir, `${this.options.fileStem}.cfg`);
  }

  start(): void {
    this.#start();
  }

  /** New sessions go to `target` under `maxSessions`; a new epoch also cuts the sessions of the old one. */
  retarget(target: TcpTarget, maxSessions: number): void {
    const previous = this.#target;
    const moved = target.epoch !== previous.epoch || target.host !== previous.host || target.port !== previous.port;
    const limitChanged = maxSessions !== this.#maxSessions;
    this.#target = target;
    this.#maxSessions = maxSessions;
    if (this.#unservable) {
      // No process runs for a target HAProxy could not name: start one for this one.
      this.#start();
      return;
    }
    const commands: string[] = [];
    try {
      if (moved) {
        const from = this.#active;
        const to: ServerSlot = from === 's1' ? 's2' : 's1';
        // A slot is reused only once the cut of its older epoch has run.
        const earlier = this.#takePendingCut();
        if (earlier) commands.push(cutCommand(earlier));
        commands.push(switchCommands(target, from, to));
        this.#active = to;
        if (this.options.holdWhileRefusedMs === 0) commands.push(cutCommand(from));
        else this.#cutLater(from);
      }
      if (limitChanged) commands.push(limitCommands(maxSessions, this.options.perClient(maxSessions)));
    } catch (error) {
      // The new target cannot be named to HAProxy: the old epoch's sessions must end all the same.
      this.#lastError = (error as Error).message;
      this.options.log.error(
        { instanceId: this.instanceId, reason: this.#lastError },
        'route cannot be served by haproxy',
      );
      this.#unservable = true;
      this.#listening = false;
      this.#child?.kill('SIGKILL');
      return;
    }
    if (commands.length > 0) this.#enqueue(commands.join('; '), { target, maxSessions });
  }

  /**
   * With a hold, a client held on the old slot sits in the middle of a connection attempt
   * to it, and `shutdown sessions server` would end it too (seen under load: the held
   * client closed at the switch instead of reaching the new primary). Its next attempt,
   * at most {@link holdAttemptMs} later, goes to the new slot; the old slot's sessions are
   * cut after that. Whoever is left on it then is the old epoch's.
   */
  #cutLater(slot: ServerSlot): void {
    const timer = setTimeout(() => {
      if (this.#pendingCut?.timer !== timer) return;
      this.#pendingCut = undefined;
      this.#enqueue(cutCommand(slot));
    }, holdAttemptMs + cutSlackMs);
    timer.unref();
    this.#pendingCut = { slot, timer };
  }

  #takePendingCut(): ServerSlot | undefined {
    const pending = this.#pendingCut;
    if (!pending) return undefined;
    clearTimeout(pending.timer);
    this.#pendingCut = undefined;
    return pending.slot;
  }

  #enqueue(command: string, applied?: RouteInForce): void {
    const generation = this.#generation;
    const ready = this.#ready;
    this.#queue = this.#queue.then(async () => {
      if (!(await ready) || generation !== this.#generation || this.#closed) return;
      try {
        const failures = commandFailures(await haproxyCommand(this.#socketPath, command));
        if (failures.length > 0) throw new Error(failures.join(' / '));
        if (applied && generation === this.#generation) this.#inForce = applied;
      } catch (error) {
        // Safety first: a switch that may not have cut the old epoch's sessions ends them all.
        this.options.log.error(
          { instanceId: this.instanceId, err: error, command },
          'haproxy runtime command failed: restarting the route process',
        );
        this.#lastError = `runtime command failed: ${(error as Error).message}`;
        this.#child?.kill('SIGKILL');
      }
    });
  }

  #start(): void {
    if (this.#closed) return;
    const { log, instanceId } = this.options;
    clearTimeout(this.#retryTimer);
    this.#generation += 1;
    this.#unservable = false;
    // A new process holds none of the old one's sessions.
    this.#takePendingCut();
    // The process starts on the current target in slot s1; later epochs alternate slots.
    this.#active = 's1';
    this.#refusedSeen.routeLimit = 0;
    this.#refusedSeen.clientLimit = 0;
    for (const counter of meteredCounters) this.#countersSeen[counter] = 0;
    let config: string;
    try {
      config = renderHaproxyRouteConfig(
        {
          listenHost: this.options.listenHost,
          port: this.port,
          target: this.#target,
          maxSessions: this.#maxSessions,
          maxSessionsPerClient: this.options.perClient(this.#maxSessions),
          processMaxconn: Math.max(maxconnFloor, this.#maxSessions * 2),
          connectTimeoutMs: this.options.connectTimeoutMs,
          holdWhileRefusedMs: this.options.holdWhileRefusedMs,
          idleTimeoutMs: this.options.idleTimeoutMs,
          socketPath: this.#socketPath,
        },
        this.#active,
      );
    } catch (error) {
      // A target HAProxy cannot name (not an IP address): nothing is served until one it can arrives.
      this.#lastError = (error as Error).message;
      log.error({ instanceId, reason: this.#lastError }, 'route cannot be served by haproxy');
      this.#unservable = true;
      this.#ready = Promise.resolve(false);
      return;
    }
    this.#ready = this.#spawn(config, { target: this.#target, maxSessions: this.#maxSessions });
  }

  async #spawn(config: string, starting: RouteInForce): Promise<boolean> {
    const { log, instanceId } = this.options;
    await writeFile(this.#configPath, config, { mode: 0o600 });
    await rm(this.#socketPath, { force: true });
    if (this.#closed) return false;
    const child = spawn(
      'setpriv',
      ['--pdeathsig', 'KILL', '--', this.options.haproxyBinary ?? 'haproxy', '-db', '-f', this.#configPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.#child = child;
    // What explains an exit: the first alert (the cause, e.g. "cannot bind socket (Address
    // already in use)"; later ones say what followed), else the last line.
    let alert = '';
    let lastLine = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      for (const line of text.split('\n').map((l) => l.trim())) {
        if (line.includes('[ALERT]')) alert ||= line.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '');
        else if (line) lastLine = line;
      }
    });
    if (child.stdout) createInterface({ input: child.stdout }).on('line', (line) => this.#onLogLine(line));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#listening = false;
      this.#inForce = undefined;
      this.#activeSessions = 0;
      clearInterval(this.#statsTimer);
      // Closed, or killed for a target it cannot serve: nothing to start again (retarget does).
      if (this.#closed || this.#unservable) return;
      this.#failures += 1;
      const said = alert || lastLine;
      this.#lastError = `haproxy exited (${signal ?? `code ${code}`})${said ? `: ${said}` : ''}`;
      const retryInMs = retryDelayMs(this.#failures);
      if (logThisFailure(this.#failures)) {
        log.error(
          { instanceId, port: this.port, reason: this.#lastError, attempts: this.#failures, retryInMs },
          'route process down',
        );
      }
      this.#retryTimer = setTimeout(() => this.#start(), retryInMs);
      this.#retryTimer.unref();
    });
    child.once('error', (error) => {
      this.#lastError = `cannot run haproxy: ${error.message}`;
    });
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline && this.#child === child) {
      try {
        await haproxyCommand(this.#socketPath, 'show info');
        this.#listening = true;
        this.#inForce = starting;
        this.#lastError = null;
        this.#failures = 0;
        this.#statsTimer = setInterval(() => void this.#readStats(child), statsIntervalMs);
        this.#statsTimer.unref();
        log.info({ instanceId, port: this.port, pid: child.pid }, 'route listening (haproxy)');
        return true;
      } catch {
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20))]);
      }
    }
    if (this.#child === child) child.kill('SIGKILL');
    return false;
  }

  #onLogLine(line: string): void {
    if (!line.startsWith(sessionLogPrefix)) return;
    const state = line.slice(sessionLogPrefix.length, sessionLogPrefix.length + 2);
    // `cD` / `sD`: the client or server side timed out during data, the idle timeout.
    if (state === 'cD' || state === 'sD') this.options.tally.count(this.instanceId, 'idleTimeout');
  }

  async #readStats(child: ChildProcess): Promise<void> {
    if (this.#child !== child || this.#readingStats) return;
    this.#readingStats = true;
    try {
      const answer = await haproxyCommand(
        this.#socketPath,
        'show stat route 1 -1 typed; show stat target 2 -1 typed; show table refused',
      );
      if (this.#child !== child) return;
      this.#activeSessions = statFields(answer, 'F').get('scur') ?? this.#activeSessions;
      this.#meterGrowth(statFields(answer, 'B'));
      const counters = tableCounters(answer);
      for (const reason of ['routeLimit', 'clientLimit'] as const) {
        const total = counters.get(refusedKeys[reason]) ?? 0;
        const added = total - this.#refusedSeen[reason];
        if (added > 0) this.options.tally.count(this.instanceId, reason, added);
        this.#refusedSeen[reason] = total;
      }
    } catch {
      // The next read tries again; a process that died is restarted by its exit handler.
    } finally {
      this.#readingStats = false;
    }
  }

  /** Sessions let through, bytes each way (as they flow) and failed connections, as counted by HAProxy. */
  #meterGrowth(backend: Map<string, number>): void {
    const grown = { stot: 0, bin: 0, bout: 0, econ: 0 };
    for (const counter of meteredCounters) {
      const now = backend.get(counter);
      if (now === undefined) continue;
      grown[counter] = Math.max(0, now - this.#countersSeen[counter]);
      this.#countersSeen[counter] = now;
    }
    const { meter } = this.options;
    if (!meter) return;
    if (grown.stot > 0) meter.opened(this.instanceId, this.port, grown.stot);
    if (grown.bin > 0 || grown.bout > 0) meter.carried(this.instanceId, this.port, grown.bin, grown.bout);
    if (grown.econ > 0) meter.connectError(this.instanceId, this.port, grown.econ);
  }

  /** Stops the process, which cuts every session of the route. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#statsTimer);
    this.#takePendingCut();
    this.#listening = false;
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // SIGTERM is HAProxy's hard stop: listeners and sessions close at once.
      child.kill('SIGTERM');
      await exited;
    }
    await rm(this.#configPath, { force: true });
    await rm(this.#socketPath, { force: true });
  }
}
