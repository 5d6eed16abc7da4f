import type { FastifyRequest } from 'fastify';
import { requestLimits } from './limits.js';
import { badRequest, payloadTooLarge, uriTooLong } from './osb-errors.js';

/**
 * How deeply a parsed JSON value nests (`{}` is 1, a scalar 0), walked without recursion:
 * a 64 KiB body can nest 30 000 levels, more than the stack allows a recursive walk (or
 * JSON.stringify) to follow. Stops counting once past `stopAbove`.
 */
export function jsonDepth(value: unknown, stopAbove = Number.POSITIVE_INFINITY): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [current, depth] = next;
    if (current === null || typeof current !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > stopAbove) return deepest;
    for (const child of Object.values(current)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return deepest;
}

/** onRequest hook: a URL longer than any the API needs is refused before anything reads it. */
export async function rejectLongUrls(request: FastifyRequest): Promise<void> {
  if (request.url.length > requestLimits.urlBytes) {
    throw uriTooLong(
      `the URL is ${request.url.length} characters long; at most ${requestLimits.urlBytes} are accepted`,
    );
  }
}

/** Fields of OSB bodies the broker stores as sent: each has its own limits. */
const storedFields = ['context', 'parameters'] as const;

/**
 * preValidation hook (after parsing, before schema validation and handlers): a body may
 * nest at most `bodyDepth` levels; its `context` and `parameters` at most `fieldDepth`
 * levels and `fieldBytes` bytes each. The overall byte limit is Fastify's `bodyLimit`.
 */
export async function checkBodyLimits(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (body === null || typeof body !== 'object') return;
  const depth = jsonDepth(body, requestLimits.bodyDepth);
  if (depth > requestLimits.bodyDepth) {
    throw badRequest(`the request body nests more than ${requestLimits.bodyDepth} levels deep`);
  }
  if (Array.isArray(body)) return;
  const fields = body as Record<string, unknown>;
  for (const field of storedFields) {
    const value = fields[field];
    if (value === undefined) continue;
    if (jsonDepth(value, requestLimits.fieldDepth) > requestLimits.fieldDepth) {
      throw badRequest(`${field} nests more than ${requestLimits.fieldDepth} levels deep`);
    }
    const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
    if (bytes > requestLimits.fieldBytes) {
      throw payloadTooLarge(`${field} is ${bytes} bytes of JSON; at most ${requestLimits.fieldBytes} are accepted`);
    }
  }
}
