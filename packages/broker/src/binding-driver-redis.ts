import type { ServiceBindingRecipe } from '@service-foundry/core';
import { createClient } from 'redis';
import { type BindingDriver, type BindingTarget, renderStatement } from './binding-driver-postgres.js';
import { UnsafeBindingValueError } from './errors.js';

/** Redis commands of the catalog split into argv; every filled-in value is one plain word. */
function renderCommands(statements: readonly string[], values: Record<string, string>): string[][] {
  for (const [name, value] of Object.entries(values)) {
    if (!/^[A-Za-z0-9_]+$/.test(value)) throw new UnsafeBindingValueError(name);
  }
  return statements.map((statement) =>
    statement
      .trim()
      .split(/\s+/)
      .map((word) => renderStatement(word, values)),
  );
}

/**
 * One connection as the instance's admin: `AUTH admin password` (RESP2), nothing else sent
 * on connect, and no reconnecting — a binding that cannot reach the instance fails, and
 * the caller decides whether to try again.
 */
function adminClient(target: BindingTarget, password: string) {
  const socket = {
    host: target.host,
    port: target.port,
    connectTimeout: target.timeoutMs,
    socketTimeout: target.timeoutMs,
    reconnectStrategy: false as const,
  };
  return createClient({
    // With TLS, the server's certificate must chain to the cluster CA and name the host.
    socket: target.tls ? { ...socket, tls: true, ca: target.tls.ca, rejectUnauthorized: true } : socket,
    username: target.adminUser,
    password,
    RESP: 2,
    disableClientInfo: true,
    maintNotifications: 'disabled',
  });
}

/**
 * Makes and removes binding users as ACL users, logged in as the instance's admin through
 * the router (so on the current primary). Redis has no transactions for ACL commands; the
 * recipe's commands are each idempotent (`ACL SETUSER … reset …`, `ACL DELUSER`), so a
 * failure half way is repaired by running them again.
 *
 * Redis does not replicate ACLs. Replicas copy the primary's users once a second
 * (`sf-redis sync-users` in the image), but a primary lost within that second took a new
 * user with it, or left a removed one alive on the replica promoted next (seen by
 * `bench:chaos`: a key made just before a power loss could not log in afterwards). So the
 * commands also run on each running replica, directly at its node address; one that
 * cannot be reached is reported and left to its copy loop.
 */
export class RedisBindingDriver implements BindingDriver {
  readonly usersOnReplicas = true;

  async createUser(target: BindingTarget, recipe: ServiceBindingRecipe, username: string, password: string) {
    const commands = renderCommands(recipe.create, { username, password });
    await this.#asAdmin(target, commands, [password]);
    return this.#onReplicas(target, commands, [password]);
  }

  async dropUser(target: BindingTarget, recipe: ServiceBindingRecipe, username: string) {
    const commands = renderCommands(recipe.drop, { username });
    await this.#asAdmin(target, commands, []);
    return this.#onReplicas(target, commands, []);
  }

  async #onReplicas(target: BindingTarget, commands: string[][], secrets: string[]): Promise<string[]> {
    const outcomes = await Promise.all(
      (target.replicas ?? []).map(async ({ host, port }) => {
        try {
          await this.#asAdmin({ ...target, host, port }, commands, secrets);
          return undefined;
        } catch (error) {
          return `replica ${host}:${port}: ${(error as Error).message}; it copies the users from its primary within a second`;
        }
      }),
    );
    return outcomes.filter((outcome) => outcome !== undefined);
  }

  async #asAdmin(target: BindingTarget, commands: string[][], secrets: string[]): Promise<void> {
    try {
      await this.#asAdminWith(target, target.adminPassword, commands, secrets);
    } catch (error) {
      // The server has not taken on the rotated password yet (`sf rotate-credentials`).
      if (!/WRONGPASS/.test((error as Error).message) || target.previousAdminPassword === undefined) throw error;
      await this.#asAdminWith(target, target.previousAdminPassword, commands, secrets);
    }
  }

  async #asAdminWith(target: BindingTarget, password: string, commands: string[][], secrets: string[]): Promise<void> {
    const known = [target.adminPassword, target.previousAdminPassword ?? '', ...secrets].filter((s) => s !== '');
    const hide = (message: string) => known.reduce((text, secret) => text.split(secret).join('***'), message);
    const client = adminClient(target, password);
    // Failures reach the awaited calls below; the event only must not go unheard.
    client.on('error', () => undefined);
    try {
      await client.connect();
      for (const args of commands) await client.sendCommand(args);
    } catch (error) {
      // Error replies may quote the command (ACL SETUSER with its >password). The system
      // error code stays: a refused connection to a route published a moment ago is retried.
      const failure: NodeJS.ErrnoException = new Error(`redis: ${hide((error as Error).message)}`);
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined) failure.code = code;
      throw failure;
    } finally {
      if (client.isOpen) client.destroy();
    }
  }
}
