import { type RouteRecord, routeCodec } from '@service-foundry/core';

/**
 * Parses the value stored at `routes/<instanceId>` with core's route codec (the record's
 * one schema) into a clean record: host names lower-cased, unknown fields dropped. Throws
 * BadRecordError with a readable reason when the value cannot be served. `limits` may be
 * absent (the router's default applies) but never malformed: a record whose limits cannot
 * be read is refused, not served without them.
 */
export function parseRouteRecord(instanceIdFromKey: string, value: unknown): RouteRecord {
  const route = routeCodec.parse(instanceIdFromKey, value);
  const clean: RouteRecord = {
    instanceId: route.instanceId,
    protocol: route.protocol,
    port: route.port,
    target: { host: route.target.host, port: route.target.port },
    epoch: route.epoch,
  };
  if (route.hostname) clean.hostname = route.hostname.toLowerCase();
  if (route.limits) clean.limits = { maxSessions: route.limits.maxSessions };
  return clean;
}

/** Two records route the same way (re-lists and repeated writes are no-ops). */
export function sameRoute(a: RouteRecord, b: RouteRecord): boolean {
  return (
    a.protocol === b.protocol &&
    a.port === b.port &&
    (a.hostname ?? null) === (b.hostname ?? null) &&
    a.target.host === b.target.host &&
    a.target.port === b.target.port &&
    a.epoch === b.epoch &&
    a.limits?.maxSessions === b.limits?.maxSessions
  );
}
