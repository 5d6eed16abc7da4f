import { type ChildProcess, spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import type { Logger } from '@service-foundry/core';
import { backoffMs, type SupervisionSpec } from './supervision-spec.js';
import { type ExitRecord, type SupervisionState, writeSupervisionState } from './supervision-state.js';

/**
 * Runs one platform component and starts it again whenever it exits without being asked
 * to: after `minBackoffMs`, doubling for each crash in a row up to `maxBackoffMs` (2 s by
 * default, so a crashed component is back within 2 s), the streak ending after a run of
 * `stableAfterMs`. SIGTERM/SIGINT to the supervisor stop the component (SIGTERM, SIGKILL
 * after `stopGraceMs`) and then the supervisor. A `kill -9` of the supervisor leaves the
 * component running unsupervised; `sf up` notices and puts it back under supervision.
 */
export class Supervisor {
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #streak = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #state: SupervisionState;
  #writes: Promise<void> = Promise.resolve();
  readonly #stopped: Promise<void>;
  #resolveStopped!: () => void;

  constructor(
    readonly spec: Readonly<SupervisionSpec>,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.#state = {
      name: spec.name,
      supervisorPid: process.pid,
      pid: null,
      startedAt: null,
      restarts: 0,
      lastExit: null,
      restartAt: null,
      phase: 'running',
    };
    this.#stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
  }

  /** Starts the component; resolves once `stop` has brought it down. */
  run(): Promise<void> {
    this.#start();
    return this.#stopped;
  }

  get state(): Readonly<SupervisionState> {
    return this.#state;
  }

  stop(reason: string): void {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.log.info({ component: this.spec.name, reason }, `stopping ${this.spec.name}`);
    if (!child) {
      this.#update({ phase: 'stopped', restartAt: null });
      this.#finish();
      return;
    }
    this.#update({ phase: 'stopping' });
    // A paused component (sf chaos pauses agents) would never see its SIGTERM.
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), this.spec.stopGraceMs);
    child.once('exit', () => clearTimeout(killer));
  }

  #start(): void {
    this.#restartTimer = undefined;
    if (this.#stopping) return;
    const [program, ...args] = this.spec.argv as [string, ...string[]];
    const child = spawn(program, args, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...this.env, SF_COMPONENT: this.spec.name, SF_SUPERVISOR: undefined },
    });
    this.#child = child;
    this.#startedAt = Date.now();
    child.once('error', (error) => {
      // spawn failed (no such program): 'exit' may never come, so this is the exit.
      if (this.#child === child) this.#exited(child, { code: null, signal: null, reason: error.message });
    });
    child.once('exit', (code, signal) => this.#exited(child, { code, signal, reason: undefined }));
    const pid = child.pid;
    if (pid !== undefined) {
      this.#writes = this.#writes.then(() => writeFile(this.spec.pidFile, `${pid}\n`, { mode: 0o600 }));
    }
    this.#update({ pid: pid ?? null, startedAt: new Date(this.#startedAt).toISOString(), restartAt: null });
    this.log.info({ component: this.spec.name, pid, restarts: this.#state.restarts }, `started ${this.spec.name}`);
  }

  #exited(
    child: ChildProcess,
    how: { code: number | null; signal: NodeJS.Signals | null; reason: string | undefined },
  ): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    const ranMs = Date.now() - this.#startedAt;
    const lastExit: ExitRecord = {
      code: how.code,
      signal: how.signal,
      at: new Date().toISOString(),
      ranMs,
    };
    if (this.#stopping) {
      this.#update({ pid: null, phase: 'stopped', lastExit });
      this.#finish();
      return;
    }
    this.#streak = ranMs >= this.spec.stableAfterMs ? 1 : this.#streak + 1;
    const delay = backoffMs(this.spec, this.#streak);
    this.#update({
      pid: null,
      lastExit,
      restarts: this.#state.restarts + 1,
      phase: 'backoff',
      restartAt: new Date(Date.now() + delay).toISOString(),
    });
    this.log.warn(
      { component: this.spec.name, code: how.code, signal: how.signal, reason: how.reason, ranMs, delayMs: delay },
      `${this.spec.name} exited unasked; restarting in ${delay} ms`,
    );
    this.#restartTimer = setTimeout(() => this.#start(), delay);
  }

  #update(change: Partial<SupervisionState>): void {
    this.#state = { ...this.#state, ...change, phase: change.phase ?? (this.#child ? 'running' : this.#state.phase) };
    const snapshot = this.#state;
    this.#writes = this.#writes
      .then(() => writeSupervisionState(this.spec.stateFile, snapshot))
      .catch((error: unknown) => this.log.error({ err: error }, `cannot write ${this.spec.stateFile}`));
  }

  #finish(): void {
    this.#writes = this.#writes.then(() => rm(this.spec.pidFile, { force: true })).catch(() => undefined);
    void this.#writes.then(() => this.#resolveStopped());
  }
}
