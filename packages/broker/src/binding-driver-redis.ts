import { connect, type Socket } from 'node:net';
import type { ServiceBindingRecipe } from '@service-foundry/core';
import { type BindingDriver, type BindingTarget, renderStatement } from './binding-driver-postgres.js';

/** A RESP2 reply: simple and bulk strings, integers, nil, arrays; error replies are thrown. */
export type RespValue = string | number | null | RespValue[];

/** An error reply of the server (`-ERR …`, `-WRONGPASS …`). */
export class RespErrorReply extends Error {}

interface Parsed {
  value: RespValue | RespErrorReply;
  next: number;
}

/** Parses one reply starting at `at`; undefined while the buffer holds only part of it. */
export function parseReply(buf: Buffer, at: number): Parsed | undefined {
  const lineEnd = buf.indexOf('\r\n', at);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[at] ?? 0);
  const line = buf.toString('utf8', at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new RespErrorReply(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespValue[] = [];
      let cursor = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, cursor);
        if (!item) return undefined;
        // An error nested in an array (EXEC) stays a value: callers here never send EXEC.
        items.push(item.value instanceof RespErrorReply ? item.value.message : item.value);
        cursor = item.next;
      }
      return { value: items, next: cursor };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/** A command as an array of bulk strings: arguments need no quoting of any kind. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''));
}

/** The smallest RESP client the broker needs: one connection, one command at a time. */
export class RespConnection {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #waiting: { resolve: (value: RespValue) => void; reject: (error: Error) => void } | undefined;
  #failure: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#deliver();
    });
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error('connection closed by the server')));
  }

  static open(host: string, port: number, timeoutMs: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.setTimeout(timeoutMs, () =>
        socket.destroy(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`)),
      );
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespConnection(socket));
      });
    });
  }

  command(args: readonly string[]): Promise<RespValue> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiting) return Promise.reject(new Error('one command at a time'));
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #deliver(): void {
    if (!this.#waiting) return;
    let parsed: Parsed | undefined;
    try {
      parsed = parseReply(this.#buffer, 0);
    } catch (error) {
      this.#socket.destroy(error as Error);
      return;
    }
    if (!parsed) return;
    this.#buffer = this.#buffer.subarray(parsed.next);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (parsed.value instanceof RespErrorReply) waiting.reject(parsed.value);
    else waiting.resolve(parsed.value);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(this.#failure);
  }
}

/** Redis commands of the catalog split into argv; every filled-in value is one plain word. */
function renderCommands(statements: readonly string[], values: Record<string, string>): string[][] {
  for (const [name, value] of Object.entries(values)) {
    if (!/^[A-Za-z0-9_]+$/.test(value)) throw new Error(`value for {{${name}}} has an unsafe shape`);
  }
  return statements.map((statement) =>
    statement
      .trim()
      .split(/\s+/)
      .map((word) => renderStatement(word, values)),
  );
}

/**
 * Makes and removes binding users as ACL users, logged in as the instance's admin through
 * the router (so on the current primary). Redis has no transactions for ACL commands; the
 * recipe's commands are each idempotent (`ACL SETUSER … reset …`, `ACL DELUSER`), so a
 * failure half way is repaired by running them again. Replicas copy the users themselves
 * (`sf-redis sync-users` in the image), since Redis does not replicate ACLs.
 */
export class RedisBindingDriver implements BindingDriver {
  async createUser(target: BindingTarget, recipe: ServiceBindingRecipe, username: string, password: string) {
    const commands = renderCommands(recipe.create, { username, password });
    await this.#asAdmin(target, commands, [password]);
  }

  async dropUser(target: BindingTarget, recipe: ServiceBindingRecipe, username: string) {
    await this.#asAdmin(target, renderCommands(recipe.drop, { username }), []);
  }

  async #asAdmin(target: BindingTarget, commands: string[][], secrets: string[]): Promise<void> {
    const hide = (message: string) =>
      [target.adminPassword, ...secrets].reduce((text, secret) => text.split(secret).join('***'), message);
    let connection: RespConnection | undefined;
    try {
      connection = await RespConnection.open(target.host, target.port, target.timeoutMs);
      await connection.command(['AUTH', target.adminUser, target.adminPassword]);
      for (const args of commands) await connection.command(args);
    } catch (error) {
      // Error replies may quote the command (ACL SETUSER with its >password). The system
      // error code stays: a refused connection to a route published a moment ago is retried.
      const failure: NodeJS.ErrnoException = new Error(`redis: ${hide((error as Error).message)}`);
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined) failure.code = code;
      throw failure;
    } finally {
      connection?.close();
    }
  }
}
