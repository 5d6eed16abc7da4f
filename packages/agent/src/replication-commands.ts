import type { ReplicaRole, ServiceReplicationRecipe } from '@service-foundry/core';
import type { DockerRuntime, ExecResult } from './docker-runtime.js';
import { lastLines } from './docker-streams.js';
import { ReplicationCommandError } from './errors.js';
import { fillCommand } from './replication-spec.js';

/** Probes (position, role) run every second: they must answer fast or count as failed. */
const probeTimeoutMs = 5000;

type Action = 'promote' | 'follow' | 'configure';

/** Why a command run in a container failed, in one line: its deadline, or its exit code and last words. */
export function describeFailure(argv: readonly string[], timeoutMs: number, result: ExecResult): string {
  const command = argv.join(' ');
  if (result.exitCode === null) return `\`${command}\` did not finish within ${timeoutMs} ms`;
  const said = lastLines(result.stderr, 3) || lastLines(result.stdout, 3);
  return `\`${command}\` exited with code ${result.exitCode}${said ? `: ${said}` : ' (no output)'}`;
}

/** Runs the catalog's replication commands inside a container, each with a deadline. */
export class ReplicationCommands {
  constructor(
    private readonly docker: DockerRuntime,
    private readonly timeoutMs: number,
  ) {}

  /** Runs promote, follow or configure; throws ReplicationCommandError unless it exits 0. */
  async run(
    containerId: string,
    recipe: ServiceReplicationRecipe,
    action: Action,
    values: Record<string, string> = {},
  ): Promise<void> {
    const argv = fillCommand(recipe[action], values);
    const result = await this.#exec(containerId, argv, this.timeoutMs, action);
    if (result.exitCode !== 0) {
      throw new ReplicationCommandError(action, `${action} failed: ${describeFailure(argv, this.timeoutMs, result)}`);
    }
  }

  /** What the recipe's `role` prints. */
  async role(containerId: string, recipe: ServiceReplicationRecipe): Promise<ReplicaRole> {
    const text = await this.#probe(containerId, recipe.role, 'role');
    if (text !== 'primary' && text !== 'replica') {
      throw new ReplicationCommandError(
        'role',
        `role printed ${JSON.stringify(text.slice(0, 80))}, not primary or replica`,
      );
    }
    return text;
  }

  /** What the recipe's `position` prints: a decimal integer, kept as a string (LSNs exceed 2^53). */
  async position(containerId: string, recipe: ServiceReplicationRecipe): Promise<string> {
    const text = await this.#probe(containerId, recipe.position, 'position');
    if (!/^(0|[1-9][0-9]{0,39})$/.test(text)) {
      throw new ReplicationCommandError(
        'position',
        `position printed ${JSON.stringify(text.slice(0, 80))}, not a decimal integer`,
      );
    }
    return text;
  }

  async #probe(containerId: string, argv: readonly string[], what: string): Promise<string> {
    const timeoutMs = Math.min(probeTimeoutMs, this.timeoutMs);
    const result = await this.#exec(containerId, argv, timeoutMs, what);
    if (result.exitCode !== 0) {
      throw new ReplicationCommandError(what, `${what} failed: ${describeFailure(argv, timeoutMs, result)}`);
    }
    return result.stdout.trim();
  }

  async #exec(containerId: string, argv: readonly string[], timeoutMs: number, what: string): Promise<ExecResult> {
    try {
      return await this.docker.exec(containerId, [...argv], timeoutMs);
    } catch (error) {
      throw new ReplicationCommandError(what, (error as Error).message, { cause: error });
    }
  }
}
