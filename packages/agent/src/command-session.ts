import { createInterface } from 'node:readline';
import type { Logger } from '@service-foundry/core';
import type { AttachedExec, DockerRuntime, ExecResult } from './docker-runtime.js';
import { CommandSessionError } from './errors.js';

/** The first line a session program prints: it speaks this protocol. */
const greeting = 'sf-session 1';
/** How long a new session may take to greet before the agent falls back to `docker exec`. */
const greetingTimeoutMs = 5000;

interface Pending {
  stderr: string[];
  settle(result: ExecResult | Error): void;
}

/**
 * One long-lived `docker exec` of the catalog's `session` command: the agent writes a
 * command's name per line, the program runs it and answers with one line, `<exit code>
 * <stdout on one line>` (its stderr is collected for the answer). A position reading or a
 * promotion through it costs a fork inside the container instead of a `docker exec` (an
 * API round trip, a process set up by the runtime, and the wait for its exit code): the
 * difference a switchover's pause is made of. Requests run one at a time, in order.
 */
export class CommandSession {
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();
  #pending: Pending | undefined;
  readonly #onClose: Array<() => void> = [];

  private constructor(
    private readonly attached: AttachedExec,
    private readonly where: string,
  ) {
    attached.stderr.on('data', (chunk: Buffer) => this.#pending?.stderr.push(chunk.toString('utf8')));
    attached.stdout.once('end', () => this.close(`the session in ${where} ended`));
  }

  /**
   * Starts the session, or returns undefined when the program does not speak the protocol
   * (an image from before it: it prints its usage and exits). Throws when Docker fails.
   */
  static async open(
    docker: DockerRuntime,
    containerId: string,
    argv: readonly string[],
  ): Promise<CommandSession | undefined> {
    const attached = await docker.attachExec(containerId, [...argv]);
    const lines = createInterface({ input: attached.stdout, crlfDelay: Number.POSITIVE_INFINITY });
    const first = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), greetingTimeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      lines.once('close', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    if (first !== greeting) {
      lines.close();
      attached.close();
      return undefined;
    }
    const session = new CommandSession(attached, `${argv[0] ?? ''} in ${containerId}`);
    lines.on('line', (line) => session.#answer(line));
    return session;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the session closes (its container stopped, a deadline passed). */
  onClose(listener: () => void): void {
    if (this.#closed) listener();
    else this.#onClose.push(listener);
  }

  /**
   * Runs `request` (a command name) and resolves with its exit code and output, or with a
   * null exit code when it did not answer within `timeoutMs` (the session is closed then:
   * a late answer would be taken for the next request's). Rejects when the session ends.
   */
  request(request: string, timeoutMs: number): Promise<ExecResult> {
    const run = this.#queue.then(() => this.#send(request, timeoutMs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  close(reason = 'closed by the agent'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.attached.close();
    this.#pending?.settle(new CommandSessionError(this.where, reason));
    for (const listener of this.#onClose.splice(0)) listener();
  }

  #send(request: string, timeoutMs: number): Promise<ExecResult> {
    if (this.#closed) return Promise.reject(new CommandSessionError(this.where, 'the session is closed'));
    return new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        const stderr = pending.stderr.join('');
        this.#pending = undefined;
        this.close(`\`${request}\` did not answer within ${timeoutMs} ms`);
        resolve({ exitCode: null, output: stderr, stdout: '', stderr });
      }, timeoutMs);
      const pending: Pending = {
        stderr: [],
        settle: (result) => {
          clearTimeout(timer);
          this.#pending = undefined;
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      this.#pending = pending;
      this.attached.stdin.write(`${request}\n`);
    });
  }

  #answer(line: string): void {
    const pending = this.#pending;
    const match = /^(\d{1,3}) (.*)$/s.exec(line);
    if (!pending || !match) {
      this.close(pending ? `unreadable answer ${JSON.stringify(line.slice(0, 80))}` : 'an answer nobody asked for');
      return;
    }
    const stdout = (match[2] ?? '').trim();
    const stderr = pending.stderr.join('');
    pending.settle({ exitCode: Number(match[1]), output: `${stderr}${stdout}`, stdout, stderr });
  }
}

/** Containers remembered as having no session (older images); the oldest are forgotten first. */
const rememberedWithout = 256;

/** The agent's command sessions, one per container, opened on first use. */
export class CommandSessions {
  readonly #sessions = new Map<string, Promise<CommandSession | undefined>>();
  readonly #without = new Set<string>();

  constructor(
    private readonly docker: DockerRuntime,
    private readonly log?: Logger,
  ) {}

  /**
   * The container's session, or undefined when its program has none (then `docker exec`
   * it is). Throws when it cannot be opened (the container stopped, Docker failed).
   */
  async of(containerId: string, argv: readonly string[]): Promise<CommandSession | undefined> {
    if (this.#without.has(containerId)) return undefined;
    const known = this.#sessions.get(containerId);
    if (known) return known;
    const opening = CommandSession.open(this.docker, containerId, argv).then(
      (session) => {
        if (session) {
          session.onClose(() => {
            if (this.#sessions.get(containerId) === opening) this.#sessions.delete(containerId);
          });
        } else {
          // Said once per container: an image that should have a session and falls back
          // (a broken script, say) shows here rather than only as slower readings.
          this.log?.info({ container: containerId, command: argv.join(' ') }, 'no command session: using docker exec');
          this.#sessions.delete(containerId);
          this.#without.add(containerId);
          for (const old of this.#without) {
            if (this.#without.size <= rememberedWithout) break;
            this.#without.delete(old);
          }
        }
        return session;
      },
      (error: unknown) => {
        this.#sessions.delete(containerId);
        throw error;
      },
    );
    this.#sessions.set(containerId, opening);
    return opening;
  }

  /** Closes every session (the agent stops). */
  async closeAll(): Promise<void> {
    const sessions = await Promise.allSettled(this.#sessions.values());
    for (const result of sessions) if (result.status === 'fulfilled') result.value?.close();
    this.#sessions.clear();
  }
}
