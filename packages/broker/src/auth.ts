import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { accessDenial, apiAreaOf, type Principal } from './api-areas.js';
import type { BrokerLogin, OperatorLogin } from './config.js';
import { forbidden, unauthorized } from './osb-errors.js';

/** Sent with every 401 (by the error handler), so clients know which scheme to use. */
export const authenticateChallenge = 'Basic realm="service-foundry"';

/** Who each request was authenticated as, set by the auth hook. */
const principals = new WeakMap<FastifyRequest, Principal>();

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

/** The broker's logins: the platform's (OSB) and the operators'. */
export class Logins {
  readonly #entries: ReadonlyArray<{ expected: Buffer; principal: Principal }>;

  constructor(osb: BrokerLogin, operators: readonly OperatorLogin[]) {
    const entry = (login: BrokerLogin, principal: Principal) => ({
      expected: digest(`${login.username}:${login.password}`),
      principal,
    });
    this.#entries = [
      entry(osb, { username: osb.username, role: 'osb' }),
      ...operators.map((o) => entry(o, { username: o.username, role: o.role })),
    ];
  }

  /**
   * The login an `Authorization` header proves. Every login is compared, hashed, whatever
   * matched before, so the time taken says nothing about which user or password was close.
   */
  identify(header: string | undefined): Principal | undefined {
    const given = basicCredentials(header);
    const hashed = digest(given ?? '');
    let found: Principal | undefined;
    for (const { expected, principal } of this.#entries) {
      if (timingSafeEqual(hashed, expected) && given !== undefined) found = principal;
    }
    return found;
  }
}

/**
 * An onRequest hook: every route but the public ones needs a login (401), and the login's
 * role must allow the route's area (403). The area comes from the route Fastify matched,
 * never from the raw URL (see apiAreaOf).
 */
export function authHook(logins: Logins) {
  return async (request: FastifyRequest): Promise<void> => {
    const area = apiAreaOf(request);
    if (area === 'public') return;
    const principal = logins.identify(request.headers.authorization);
    if (!principal) throw unauthorized();
    const denial = accessDenial(principal, area, request.method);
    if (denial) throw forbidden(denial);
    principals.set(request, principal);
  };
}

/** The login the request was authenticated as; undefined on public routes. */
export function principalOf(request: FastifyRequest): Principal | undefined {
  return principals.get(request);
}

/** The login of a request on an authenticated route (the auth hook ran before any handler). */
export function requirePrincipal(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  if (!principal) throw unauthorized();
  return principal;
}

/**
 * The user name the request was authenticated as, for audit fields ("requested by"),
 * e.g. as the default of the `X-SF-Operator` header.
 */
export function authenticatedUser(request: FastifyRequest): string {
  return requirePrincipal(request).username;
}
