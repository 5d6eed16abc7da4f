import { normalize } from 'node:path';
import { InvalidConfigError } from '@service-foundry/core';
import { type ResolvedAgent, resolveAgent } from './agent-path.js';
import { runAgentOnce } from './agent-process.js';
import type { FenceDeviceConfig, FenceDevicesInput } from './device-config.js';
import { FenceAgentMetadataError, FenceAgentRefusedError } from './errors.js';
import { type AgentMetadata, parseAgentMetadata } from './metadata-xml.js';
import { checkAgentOptions } from './option-check.js';

/**
 * What decides which agents run and with which options: the fields of FencingOptions of
 * the same names (whose defaults apply when the gate comes from `new Fencing`).
 */
export interface FenceAgentsOptions {
  /** Allow-listed directories, absolute and normalised. Required. */
  agentDirs: readonly string[];
  /** Option names refused whatever the agent declares (`*_path` = any name ending in `_path`). Required. */
  refusedOptions: readonly string[];
  /** Deadline of one `action=metadata` run, in ms. Required. */
  metadataTimeoutMs: number;
}

/** Metadata larger than this is not ClusterLabs metadata (fence_ipmilan's is 15 kB). */
const maxMetadataBytes = 1024 * 1024;
/** Agents on a host: Debian ships ~85; more entries only come from replaced files. */
const maxCachedAgents = 256;

/**
 * The gate in front of every fence agent: resolves `agent` through the allow-list
 * (agent-path.ts), asks the agent for its parameters once per version of its file
 * (`action=metadata`, cached by real path, inode, size and times), and checks a device's
 * options against them. The operator API calls it before storing devices; the runner
 * calls it again before every run, so a device written to etcd by anything else is
 * refused too.
 */
export class FenceAgents {
  readonly options: Readonly<FenceAgentsOptions>;
  readonly #metadata = new Map<string, Promise<AgentMetadata>>();

  constructor(options: FenceAgentsOptions) {
    const bad = options.agentDirs.filter(
      (d) => !d.startsWith('/') || normalize(d) !== d || (d.endsWith('/') && d !== '/'),
    );
    if (bad.length > 0) {
      throw new InvalidConfigError('fencing options', [
        `agentDirs must be absolute normalised paths: ${bad.join(', ')}`,
      ]);
    }
    this.options = Object.freeze({
      agentDirs: Object.freeze([...options.agentDirs]),
      refusedOptions: Object.freeze([...options.refusedOptions]),
      metadataTimeoutMs: options.metadataTimeoutMs,
    });
  }

  /** The allow-listed executable for `agent`; FenceAgentRefusedError says why not. */
  resolve(agent: string): Promise<ResolvedAgent> {
    return resolveAgent(agent, this.options.agentDirs);
  }

  /** The agent's declared parameters; FenceAgentMetadataError when it gives none. */
  metadata(agent: ResolvedAgent): Promise<AgentMetadata> {
    const cached = this.#metadata.get(agent.version);
    if (cached) return cached;
    const loading = this.#loadMetadata(agent.path);
    this.#metadata.set(agent.version, loading);
    // A failure is not remembered: the next request asks the agent again.
    loading.catch(() => this.#metadata.delete(agent.version));
    if (this.#metadata.size > maxCachedAgents) {
      const oldest = this.#metadata.keys().next().value;
      if (oldest !== undefined) this.#metadata.delete(oldest);
    }
    return loading;
  }

  /**
   * Resolves the device's agent and checks its options; the executable to spawn. Throws
   * FenceAgentRefusedError (agent or options refused) or FenceAgentMetadataError.
   */
  async prepare(device: Readonly<Pick<FenceDeviceConfig, 'agent' | 'options'>>): Promise<ResolvedAgent> {
    const resolved = await this.resolve(device.agent);
    const metadata = await this.metadata(resolved);
    const problems = checkAgentOptions(metadata, device.options, this.options.refusedOptions);
    if (problems.length > 0) {
      const list = problems.map((p) => `option ${p.option}: ${p.problem}`).join('; ');
      throw new FenceAgentRefusedError(device.agent, list);
    }
    return resolved;
  }

  /**
   * Every problem of a whole configuration, as `/levels/L/devices/D/…: why` (the shape of
   * the schema's problems), for the operator API's 400. Empty when every device may run.
   */
  async configProblems(config: Readonly<FenceDevicesInput>): Promise<string[]> {
    const problems: string[] = [];
    for (const [l, level] of config.levels.entries()) {
      for (const [d, device] of level.devices.entries()) {
        const at = `/levels/${l}/devices/${d}`;
        let metadata: AgentMetadata;
        try {
          metadata = await this.metadata(await this.resolve(device.agent));
        } catch (error) {
          if (!(error instanceof FenceAgentRefusedError || error instanceof FenceAgentMetadataError)) throw error;
          problems.push(`${at}/agent: ${error.message}`);
          continue;
        }
        for (const p of checkAgentOptions(metadata, device.options, this.options.refusedOptions)) {
          problems.push(`${at}/options/${p.option}: ${p.problem}`);
        }
      }
    }
    return problems;
  }

  async #loadMetadata(path: string): Promise<AgentMetadata> {
    const run = await runAgentOnce({
      executable: path,
      stdin: 'action=metadata\n',
      timeoutMs: this.options.metadataTimeoutMs,
      maxOutputBytes: maxMetadataBytes,
      secrets: [],
      raw: true,
    });
    if (run.spawnError !== undefined) throw new FenceAgentMetadataError(path, `cannot start it: ${run.spawnError}`);
    if (run.timedOut) throw new FenceAgentMetadataError(path, `no answer within ${this.options.metadataTimeoutMs} ms`);
    if (run.exitCode !== 0) {
      const said = run.stderr.trim().split('\n').pop()?.slice(0, 200) ?? '';
      const how = run.signal ? `killed by ${run.signal}` : `exit code ${run.exitCode}`;
      throw new FenceAgentMetadataError(path, said ? `${how}: ${said}` : how);
    }
    return parseAgentMetadata(run.stdout, path);
  }
}
