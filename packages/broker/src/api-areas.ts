import type { FastifyRequest } from 'fastify';
import type { OperatorRole } from './config.js';

/** Who a login is: the platform (`osb`), or an operator with a role. */
export type Role = 'osb' | OperatorRole;

export interface Principal {
  readonly username: string;
  readonly role: Role;
}

/**
 * Which API a request reaches. `unrouted`: no route matched (the answer is 404 or 405,
 * for any known login).
 */
export type ApiArea = 'public' | 'osb' | 'operator' | 'unrouted';

/**
 * The area of the route Fastify matched. Fastify routes on the decoded path, so this is the
 * only view of the path that cannot disagree with the handler that runs: `/%762/catalog`
 * and `/v2/catalog` both match the route `/v2/catalog` here, whatever the raw URL says.
 */
export function apiAreaOf(request: FastifyRequest): ApiArea {
  const route = request.routeOptions.url;
  if (route === undefined) return 'unrouted';
  if (route === '/healthz') return 'public';
  if (route.startsWith('/v2/')) return 'osb';
  // `/sf/v1/…`, and any route added later without an area: the most guarded one.
  return 'operator';
}

const readOnly = new Set(['GET', 'HEAD']);

/** Why `principal` may not make this request, or undefined when it may. */
export function accessDenial(principal: Principal, area: ApiArea, method: string): string | undefined {
  const who = `${principal.username} (${principal.role === 'osb' ? 'the platform login' : principal.role})`;
  if (area === 'osb' && principal.role === 'viewer') {
    return `${who} may only read the operator API (GET /sf/v1/…)`;
  }
  if (area === 'operator') {
    if (principal.role === 'osb')
      return `${who} reaches the OSB API (/v2/…) only; the operator API needs an operator login`;
    if (principal.role === 'viewer' && !readOnly.has(method)) {
      return `${who} may only read the operator API (GET /sf/v1/…), not ${method} it`;
    }
  }
  return undefined;
}
