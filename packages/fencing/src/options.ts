import { configCompiler } from '@service-foundry/core';
import { defaultAgentDirs } from './agent-path.js';
import { defaultRefusedOptions } from './option-check.js';

/** Knobs of the fencing service (the controller's and the broker's side; devices have their own). */
export interface FencingOptions {
  /**
   * The allow-list of fence agents: only `fence_*` executables in these directories run
   * (an agent name is looked for here in order, never on PATH; an absolute agent path must
   * be in one of them). Debian's `fence-agents` installs into `/usr/sbin`; the project's
   * `fence_sf_sim` is in `packages/fencing/bin`. Absolute, normalised paths.
   * @default ['/usr/sbin', '<packages/fencing>/bin']
   */
  agentDirs: string[];
  /**
   * Agent options refused even when the agent declares them, because they make it run a
   * program or script, or write a file, named by the option, or exit without fencing.
   * `*_path` refuses every name ending in `_path`.
   * @default ['*_path', '*_script', 'ssh_options', 'openrc', 'debug_file', 'token_file', 'logfile', 'help', 'version']
   */
  refusedOptions: string[];
  /** Deadline of one `action=metadata` run of an agent (its parameters, cached per file). @default 10000 */
  metadataTimeoutMs: number;
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
      default: defaultAgentDirs(),
      maxItems: 16,
      // Absolute and normalised: no "." or ".." segment, no "//", no trailing "/".
      items: { type: 'string', maxLength: 1024, pattern: '^(/(?!\\.\\.?(/|$))[^/\\u0000-\\u001f]+)+$' },
    },
    refusedOptions: {
      type: 'array',
      default: [...defaultRefusedOptions],
      maxItems: 256,
      items: { type: 'string', pattern: '^\\*?[A-Za-z0-9_-]{1,64}$' },
    },
    metadataTimeoutMs: { type: 'integer', default: 10_000, minimum: 100, maximum: 120_000 },
    staleGraceMs: { type: 'integer', default: 30_000, minimum: 0 },
    maxOutputBytes: { type: 'integer', default: 4096, minimum: 0, maximum: 1_048_576 },
    retryDelayMs: { type: 'integer', default: 500, minimum: 0, maximum: 60_000 },
    waitPollMs: { type: 'integer', default: 200, minimum: 10, maximum: 10_000 },
    recordEvents: { type: 'boolean', default: true },
  },
});
