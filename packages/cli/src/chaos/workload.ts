/**
 * A client writing numbered records through the router, one at a time, keeping what it
 * knows about each: acknowledged, refused (an answer that says it did not happen), or in
 * doubt (no answer). After healing, `readBack` lists what the instance holds.
 */
export interface Workload {
  readonly sent: number[];
  readonly acknowledged: Array<{ id: number; at: number }>;
  readonly refused: number[];
  /** The last few errors, for the summary. */
  readonly errors: Array<{ at: number; message: string }>;
  prepare(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
  readBack(): Promise<Set<number>>;
  /** Removes what `prepare` made. */
  cleanUp(): Promise<void>;
}

/** A write tried directly at one replica's own address (the split-brain probe). */
export interface DirectProbe {
  /** Tries one write; true when the server accepted it. Never throws. */
  tryWrite(id: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Client retry pacing after an error, as an application backs off; not synchronization. */
export const retryPauseMs = 50;

/** Keeps the last `max` errors only. */
export function remember(errors: Array<{ at: number; message: string }>, message: string, max = 20): void {
  errors.push({ at: Date.now(), message });
  if (errors.length > max) errors.splice(0, errors.length - max);
}
