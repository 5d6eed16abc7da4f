import type { FastifyRequest } from 'fastify';

/**
 * OSB versions this broker serves: `X-Broker-API-Version: 2.11` to `2.17`. A platform
 * speaking a newer 2.x is served as 2.17 (minor versions only add optional fields, which
 * that platform knows); one older than 2.11 is refused with 412, since it would not
 * understand plan-level `bindable` (2.11).
 */
export const oldestMinor = 11;
export const newestMinor = 17;

/**
 * The OSB minor version that introduced each optional field the broker sends (or reads).
 * A platform gets a field only when it declared that version or a newer one, and a request
 * field from a newer version than the platform declared is an unknown field to that
 * platform's dialect, so it is ignored (OSB: receivers ignore fields they do not know).
 */
export const fieldSince = {
  /** Catalog, plan: `schemas`. */
  planSchemas: 13,
  /** Catalog, service: `instances_retrievable`, `bindings_retrievable`. */
  retrievable: 14,
  /** Catalog, service: `allow_context_updates`. */
  allowContextUpdates: 15,
  /** Catalog, plan: `plan_updateable`. */
  planUpdateable: 15,
  /** Catalog, plan: `maximum_polling_duration`. */
  maximumPollingDuration: 15,
  /** Catalog, plan; provision, update and fetch of an instance: `maintenance_info`. */
  maintenanceInfo: 15,
  /** last_operation: the `Retry-After` header. */
  retryAfter: 15,
  /** Binding responses: `endpoints`. */
  endpoints: 15,
  /** last_operation and error bodies: `instance_usable`, `update_repeatable`. */
  operationOutcome: 16,
  /** Catalog, plan: `binding_rotatable`; binding requests: `predecessor_binding_id`. */
  bindingRotation: 17,
} as const;

const versionPattern = /^(\d{1,4})\.(\d{1,4})$/;

export type VersionVerdict = { ok: true; minor: number } | { ok: false; reason: 'missing' | 'unsupported' };

/** What an `X-Broker-API-Version` header value says. */
export function parseApiVersion(header: string | string[] | undefined): VersionVerdict {
  if (typeof header !== 'string' || header.trim() === '') return { ok: false, reason: 'missing' };
  const match = versionPattern.exec(header.trim());
  const minor = Number(match?.[2]);
  if (match?.[1] !== '2' || minor < oldestMinor) return { ok: false, reason: 'unsupported' };
  return { ok: true, minor: Math.min(minor, newestMinor) };
}

/**
 * The OSB minor version a request declared (2.11–2.17), or undefined when it declared none
 * that is served (operator routes do not need one).
 */
export function requestMinor(request: FastifyRequest): number | undefined {
  const verdict = parseApiVersion(request.headers['x-broker-api-version']);
  return verdict.ok ? verdict.minor : undefined;
}

/** Whether the request's platform knows `field`. */
export function speaks(request: FastifyRequest, field: keyof typeof fieldSince): boolean {
  return (requestMinor(request) ?? 0) >= fieldSince[field];
}
