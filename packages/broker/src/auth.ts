import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { unauthorized } from './osb-errors.js';

/** Routes reachable without credentials (liveness probes). */
const publicPaths = new Set(['/healthz']);

/** Sent with every 401 (by the error handler), so clients know which scheme to use. */
export const authenticateChallenge = 'Basic realm="service-foundry"';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** `user:password` from an `Authorization: Basic …` header, or undefined when absent/malformed. */
function basicCredentials(header: string | undefined): string | undefined {
  const match = header ? /^Basic[ \t]+([A-Za-z0-9+/]+=*)[ \t]*$/i.exec(header) : null;
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  return decoded.includes(':') ? decoded : undefined;
}

/**
 * An onRequest hook enforcing HTTP basic auth on every route but the public ones. Both
 * sides are hashed before comparing so the comparison takes the same time whatever the
 * input's length or content.
 */
export function basicAuthHook(username: string, password: string) {
  const expected = digest(`${username}:${password}`);
  return async (request: FastifyRequest): Promise<void> => {
    const path = request.url.split('?', 1)[0] ?? '';
    if (publicPaths.has(path)) return;
    const given = basicCredentials(request.headers.authorization);
    const ok = timingSafeEqual(digest(given ?? ''), expected) && given !== undefined;
    if (!ok) throw unauthorized();
  };
}
