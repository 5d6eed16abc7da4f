import type { ReplicaRole, ServiceReplicationRecipe } from '@service-foundry/core';
import type { CommandSessions } from './command-session.js';
import type { DockerRuntime, ExecResult } from './docker-runtime.js';
import { lastLines } from './docker-streams.js';
import { ReplicationCommandError } from './errors.js';
import { fillCommand } from './replication-spec.js';

/** Probes (position, role) run every second: they must answer fast or count as failed. */
const probeTimeoutMs = 5000;

type Action = 'promote' | 'follow' | 'configure';

/** The commands a recipe's `session` serves (catalog.ts). */
const sessionCommands: ReadonlySet<string> = new Set(['role', 'position', 'promote']);

/** The session request that stands for `argv`, when the recipe's session serves it. */
export function sessionRequest(recipe: ServiceReplicationRecipe, argv: readonly string[]): string | undefined {
  const [program, word, ...rest] = argv;
  if (!recipe.session || program !== recipe.session[0] || word === undefined || rest.length > 0) return undefined;
  return sessionCommands.has(word) ? word : undefined;
}

/** Why a command run in a container failed, in one line: its deadline, or its exit code and last words. */
export function describeFailure(argv: readonly string[], timeoutMs: number, result: ExecResult): string {
  const command = argv.join(' ');
  if (result.exitCode === null) return `\`${command}\` did not finish within ${timeoutMs} ms`;
  const said = lastLines(result.stderr, 3) || lastLines(result.stdout, 3);
  return `\`${command}\` exited with code ${result.exitCode}${said ? `: ${said}` : ' (no output)'}`;
}

/**
 * Runs the catalog's replication commands inside a container, each with a deadline:
 * through the container's command session where the recipe has one (command-session.ts),
 * otherwise, or when it cannot be opened, with `docker exec`.
 */
export class ReplicationCommands {
  constructor(
    private readonly docker: DockerRuntime,
    private readonly timeoutMs: number,
    private readonly sessions?: CommandSessions,
  ) {}

  /** Runs promote, follow or configure; throws ReplicationCommandError unless it exits 0. */
  async run(
    containerId: string,
    recipe: ServiceReplicationRecipe,
    action: Action,
    values: Record<string, string> = {},
  ): Promise<void> {
    const argv = fillCommand(recipe[action], values);
    const result = await this.#exec(containerId, recipe, argv, this.timeoutMs, action);
    if (result.exitCode !== 0) {
      throw new ReplicationCommandError(action, `${action} failed: ${describeFailure(argv, this.timeoutMs, result)}`);
    }
  }

  /** What the recipe's `role` prints. */
  async role(containerId: string, recipe: ServiceReplicationRecipe): Promise<ReplicaRole> {
    const text = await this.#probe(containerId, recipe, recipe.role, 'role');
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
    const text = await this.#probe(containerId, recipe, recipe.position, 'position');
    if (!/^(0|[1-9][0-9]{0,39})$/.test(text)) {
      throw new ReplicationCommandError(
        'position',
        `position printed ${JSON.stringify(text.slice(0, 80))}, not a decimal integer`,
      );
    }
    return text;
  }

  async #probe(
    containerId: string,
    recipe: ServiceReplicationRecipe,
    argv: readonly string[],
    what: string,
  ): Promise<string> {
    const timeoutMs = Math.min(probeTimeoutMs, this.timeoutMs);
    const result = await this.#exec(containerId, recipe, argv, timeoutMs, what);
    if (result.exitCode !== 0) {
      throw new ReplicationCommandError(what, `${what} failed: ${describeFailure(argv, timeoutMs, result)}`);
    }
    return result.stdout.trim();
  }

  async #exec(
    containerId: string,
    recipe: ServiceReplicationRecipe,
    argv: readonly string[],
    timeoutMs: number,
    what: string,
  ): Promise<ExecResult> {
    try {
      const request = sessionRequest(recipe, argv);
      if (request !== undefined && recipe.session && this.sessions) {
        // A session that cannot be opened (yet) costs nothing but this request's exec.
        const session = await this.sessions.of(containerId, recipe.session).catch(() => undefined);
        if (session) return await session.request(request, timeoutMs);
      }
      return await this.docker.exec(containerId, [...argv], timeoutMs);
    } catch (error) {
      throw new ReplicationCommandError(what, (error as Error).message, { cause: error });
    }
  }
}
