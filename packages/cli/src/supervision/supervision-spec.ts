import { configCompiler } from '@service-foundry/core';

/**
 * What one supervisor runs (`$SF_HOME/config/<name>.supervise.json`, written by `sf up`):
 * the component's command and where to report. The command line of the supervisor names
 * only this file, so nothing secret is on a command line.
 */
export interface SupervisionSpec {
  /** The component, e.g. `router-1`; the child gets `SF_COMPONENT=<name>`. */
  name: string;
  /** argv[0] is an absolute path. */
  argv: string[];
  /** The component's own pid, rewritten at every start (what `kill -9` and fence devices aim at). */
  pidFile: string;
  /** Restarts, the last exit and the backoff, for `sf status` (supervision-state.ts). */
  stateFile: string;
  /** Delay before the first restart after a crash; doubles per crash in a row. @default 100 */
  minBackoffMs: number;
  /** The longest delay before a restart: a crashed component is back within it. @default 2000 */
  maxBackoffMs: number;
  /** A run this long ends a crash streak: the next restart waits `minBackoffMs` again. @default 10000 */
  stableAfterMs: number;
  /** On SIGTERM, how long the component has to stop before SIGKILL. @default 20000 */
  stopGraceMs: number;
}

export const compileSupervisionSpec = configCompiler<SupervisionSpec>('supervision spec', {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'argv', 'pidFile', 'stateFile'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    argv: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      items: { type: 'string', minLength: 1, maxLength: 4096 },
    },
    pidFile: { type: 'string', pattern: '^/' },
    stateFile: { type: 'string', pattern: '^/' },
    minBackoffMs: { type: 'integer', minimum: 10, maximum: 60_000, default: 100 },
    maxBackoffMs: { type: 'integer', minimum: 10, maximum: 300_000, default: 2000 },
    stableAfterMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
    stopGraceMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 20_000 },
  },
});

/** The delay before restart number `streak` (1 = first crash of a streak): doubling, capped. */
export function backoffMs(spec: Pick<SupervisionSpec, 'minBackoffMs' | 'maxBackoffMs'>, streak: number): number {
  const doubled = spec.minBackoffMs * 2 ** Math.max(0, Math.min(streak - 1, 30));
  return Math.min(spec.maxBackoffMs, doubled);
}
