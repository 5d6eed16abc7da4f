import { configCompiler } from '@service-foundry/core';

/** Knobs of the fencing service (the controller's and the broker's side; devices have their own). */
export interface FencingOptions {
  /**
   * Directories searched for agent names after PATH. Debian's `fence-agents` installs into
   * `/usr/sbin`, which is not on every service's PATH.
   * @default ['/usr/sbin', '/usr/local/sbin', '/sbin']
   */
  agentDirs: string[];
  /**
   * Added to a fencing attempt's worst-case run time to make its deadline; past it, the
   * attempt counts as abandoned (its runner crashed) and another caller may take it over.
   * Also covers clock skew between controllers.
   * @default 30000
   */
  staleGraceMs: number;
  /** Bytes of stdout and of stderr kept per device run in history. @default 4096 */
  maxOutputBytes: number;
  /** Pause between attempts of a failed device action. @default 500 */
  retryDelayMs: number;
  /** How often a caller waiting for another runner's attempt re-reads the record. @default 200 */
  waitPollMs: number;
  /** Record fence steps as platform events (`sf events`). @default true */
  recordEvents: boolean;
}

export const compileFencingOptions = configCompiler<FencingOptions>('fencing options', {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    agentDirs: {
      type: 'array',
      default: ['/usr/sbin', '/usr/local/sbin', '/sbin'],
      items: { type: 'string', pattern: '^/' },
    },
    staleGraceMs: { type: 'integer', default: 30_000, minimum: 0 },
    maxOutputBytes: { type: 'integer', default: 4096, minimum: 0, maximum: 1_048_576 },
    retryDelayMs: { type: 'integer', default: 500, minimum: 0, maximum: 60_000 },
    waitPollMs: { type: 'integer', default: 200, minimum: 10, maximum: 10_000 },
    recordEvents: { type: 'boolean', default: true },
  },
});
