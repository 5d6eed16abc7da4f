import { isKeySegment } from '@service-foundry/core';
import { badRequest } from './osb-errors.js';

/** Ids in URLs become etcd key segments: anything else is refused before etcd is touched. */
export function keySegmentParam(value: string, what: 'instance id' | 'binding id'): string {
  if (!isKeySegment(value)) {
    throw badRequest(
      `${what} ${JSON.stringify(value.slice(0, 200))} is invalid: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return value;
}

/** OSB's `accepts_incomplete` query flag; only the literal `true` means yes. */
export function acceptsIncomplete(query: { accepts_incomplete?: string }): boolean {
  return query.accepts_incomplete === 'true';
}

/**
 * A user-facing name from the platform context (`instance_name`, `binding_name`), or the
 * fallback when the platform sends none.
 */
export function contextName(context: Record<string, unknown>, field: string, fallback: string): string {
  const value = context[field];
  if (value === undefined) return fallback;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (typeof value !== 'string' || value.length === 0 || value.length > 255 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(`context.${field} must be a string of 1 to 255 printable characters`);
  }
  return value;
}

/** Query-string fields arrive as strings (no coercion); repeated fields would be arrays and fail. */
export const stringField = { type: 'string', minLength: 1 } as const;

export const idParams = (...names: string[]) => ({
  type: 'object',
  required: names,
  properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])),
});
