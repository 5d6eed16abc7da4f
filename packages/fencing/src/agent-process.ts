import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { redactText } from './secrets.js';

/** How one run of a fence agent ended. */
export interface AgentRun {
  /** Null when the process was killed by a signal or never started. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Set when the executable could not be started (ENOENT, EACCES, …). */
  spawnError?: string;
  /** Redacted and truncated. */
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface AgentRunRequest {
  executable: string;
  /** The `key=value` lines, already encoded. */
  stdin: string;
  timeoutMs: number;
  /** Bytes of stdout and of stderr kept (after redaction). */
  maxOutputBytes: number;
  /** Scrubbed from the captured output. */
  secrets: readonly string[];
  /**
   * Keep the output as the agent wrote it (no `password=…` scrubbing): for
   * `action=metadata`, which carries no secrets but mentions `--password=[password]`.
   * @default false
   */
  raw?: boolean;
}

/** Output kept before redaction: enough that a secret is never cut in half at the limit. */
const rawCaptureBytes = 64 * 1024;

/** The system's directories: the PATH of whoever started the platform decides nothing. */
const systemPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * A small, fixed environment: agents get their options on stdin, and the controller's own
 * environment (etcd endpoints, credentials, PATH) is none of their business. Node's own
 * directory is on PATH so `#!/usr/bin/env node` agents (fence_sf_sim) start.
 */
function agentEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: `${systemPath}:${dirname(process.execPath)}`, LANG: 'C.UTF-8' };
  for (const name of ['HOME', 'TMPDIR', 'TZ'] as const) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

class Capture {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #dropped = 0;
  readonly #limit: number;

  constructor(maxOutputBytes: number) {
    this.#limit = Math.max(rawCaptureBytes, maxOutputBytes);
  }

  add(chunk: Buffer): void {
    const room = this.#limit - this.#bytes;
    if (room <= 0) {
      this.#dropped += chunk.length;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.#chunks.push(kept);
    this.#bytes += kept.length;
    this.#dropped += chunk.length - kept.length;
  }

  text(secrets: readonly string[] | 'raw', maxBytes: number): string {
    const all = Buffer.concat(this.#chunks).toString('utf8');
    const redacted = secrets === 'raw' ? all : redactText(all, secrets);
    const bytes = Buffer.from(redacted, 'utf8');
    if (bytes.length <= maxBytes && this.#dropped === 0) return redacted;
    const cut = bytes.subarray(0, maxBytes).toString('utf8');
    return `${cut}…[truncated ${bytes.length - Buffer.byteLength(cut) + this.#dropped} bytes]`;
  }
}

/**
 * Runs one agent once: spawned without a shell and with no arguments (argv is fixed, so no
 * option can become a command line), options on stdin, in its own process group so a
 * timeout kills the agent and everything it started (ssh, ipmitool, curl, …).
 */
export function runAgentOnce(request: AgentRunRequest): Promise<AgentRun> {
  const started = performance.now();
  const stdout = new Capture(request.maxOutputBytes);
  const stderr = new Capture(request.maxOutputBytes);
  const secrets = request.raw ? 'raw' : request.secrets;
  return new Promise((resolve) => {
    let timedOut = false;
    let spawnError: string | undefined;
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const child = spawn(request.executable, [], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: agentEnvironment(),
      shell: false,
    });
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, request.timeoutMs);
    const finish = (exitCode: number | null, signal: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      const run: AgentRun = {
        exitCode,
        signal,
        timedOut,
        stdout: stdout.text(secrets, request.maxOutputBytes),
        stderr: stderr.text(secrets, request.maxOutputBytes),
        durationMs: Math.round(performance.now() - started),
      };
      if (spawnError !== undefined) run.spawnError = spawnError;
      resolve(run);
    };
    child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
    // An agent that exits without reading its stdin makes our write fail with EPIPE.
    child.stdin.on('error', () => undefined);
    child.on('error', (error) => {
      spawnError = error.message;
      finish(null, null);
    });
    child.on('exit', (code, signal) => {
      // A grandchild that outlived the agent may hold the pipes open: give the output a
      // moment to drain, then stop waiting for it.
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, 500);
    });
    child.on('close', (code, signal) => finish(code, signal));
    child.stdin.end(request.stdin);
  });
}
