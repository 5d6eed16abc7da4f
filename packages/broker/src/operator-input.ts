import { InvalidInputError } from '@service-foundry/core';
import type { FastifyRequest } from 'fastify';
import { authenticatedUser } from './auth.js';
import { badRequest } from './osb-errors.js';

/** Operator names as recorded in audit fields: no spaces, nothing that needs escaping. */
const operatorName = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

/**
 * Who asks, for the records and events: the `X-SF-Operator` header when a client names its
 * operator (as for node controls and fencing), else the basic-auth user the request was
 * authenticated as.
 */
export function operatorOf(request: FastifyRequest): string {
  const header = request.headers['x-sf-operator'];
  if (header === undefined) return authenticatedUser(request);
  if (typeof header !== 'string' || !operatorName.test(header)) {
    throw badRequest('X-SF-Operator must be 1 to 64 characters: letters, digits and . _ @ + -');
  }
  return header;
}

/**
 * Collects every problem of one request body, so a client learns all of them at once;
 * `fail` throws them as one 400 (InvalidInputError lists them).
 */
export class BodyProblems {
  readonly list: string[] = [];

  constructor(readonly what: string) {}

  add(problem: string): void {
    this.list.push(problem);
  }

  /** The body as an object (absent counts as `{}`); unknown fields become problems. */
  fields(body: unknown, allowed: readonly string[]): Record<string, unknown> {
    if (body === undefined || body === null) return {};
    if (typeof body !== 'object' || Array.isArray(body)) {
      this.add('the request body must be a JSON object');
      return {};
    }
    const fields = body as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (!allowed.includes(key)) {
        const hint = allowed.length ? `allowed: ${allowed.join(', ')}` : 'the body must be empty';
        this.add(`unknown field ${JSON.stringify(key.slice(0, 100))} (${hint})`);
      }
    }
    return fields;
  }

  fail(): void {
    if (this.list.length) throw new InvalidInputError(`invalid ${this.what}`, this.list);
  }
}
