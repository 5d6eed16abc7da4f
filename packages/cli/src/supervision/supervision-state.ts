import { readFile, rename, writeFile } from 'node:fs/promises';

/** How a component's last run ended. */
export interface ExitRecord {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  /** ISO time of the exit. */
  at: string;
  /** How long that run lasted. */
  ranMs: number;
}

/** What a supervisor reports in its state file, read by `sf status`. */
export interface SupervisionState {
  name: string;
  supervisorPid: number;
  /** The running component, or null between a crash and its restart (and after a stop). */
  pid: number | null;
  /** ISO time the current run started. */
  startedAt: string | null;
  /** Restarts after an exit nobody asked for, since the supervisor started. */
  restarts: number;
  lastExit: ExitRecord | null;
  /** When a restart is due (null while running). */
  restartAt: string | null;
  phase: 'running' | 'backoff' | 'stopping' | 'stopped';
}

/** Replaces the state file in one rename: a reader never sees half of it. */
export async function writeSupervisionState(file: string, state: SupervisionState): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(state)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

/** The state a supervisor last wrote, or undefined when there is none (or it is unreadable). */
export async function readSupervisionState(file: string): Promise<SupervisionState | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<SupervisionState>;
    if (typeof parsed.name !== 'string' || typeof parsed.restarts !== 'number') return undefined;
    return parsed as SupervisionState;
  } catch {
    return undefined;
  }
}

/** "SIGKILL after 41.2 s" / "exit code 1 after 0.3 s": the last exit in words. */
export function describeExit(exit: ExitRecord | null): string {
  if (!exit) return '-';
  const how = exit.signal ?? `exit code ${exit.code}`;
  return `${how} after ${(exit.ranMs / 1000).toFixed(1)} s`;
}
