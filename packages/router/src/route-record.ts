import { configCompiler, isKeySegment, type RouteRecord } from '@service-foundry/core';

/*
 * Route records come from etcd, so they are external input: a malformed value written by a
 * buggy or foreign writer must be rejected here, never reach a listener.
 */
const hostnamePattern =
  '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';

const compileShape = configCompiler<RouteRecord>('route record', {
  type: 'object',
  required: ['instanceId', 'protocol', 'port', 'target', 'epoch'],
  // Newer writers may add fields; the router only needs these.
  additionalProperties: true,
  properties: {
    instanceId: { type: 'string', minLength: 1 },
    protocol: { type: 'string', enum: ['tcp', 'http'] },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    hostname: { type: 'string', nullable: true, maxLength: 253, pattern: hostnamePattern },
    target: {
      type: 'object',
      required: ['host', 'port'],
      additionalProperties: true,
      properties: {
        host: { type: 'string', minLength: 1, maxLength: 255 },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    epoch: { type: 'integer', minimum: 0 },
    limits: {
      type: 'object',
      nullable: true,
      required: ['maxSessions'],
      additionalProperties: true,
      properties: { maxSessions: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
    },
  },
});

/**
 * Parses the value stored at `routes/<instanceId>` into a clean record (host names
 * lower-cased, unknown fields dropped). Throws with a readable reason when the value
 * cannot be served. `limits` may be absent (the router's default applies) but never
 * malformed: a record whose limits cannot be read is refused, not served without them.
 */
export function parseRouteRecord(instanceIdFromKey: string, value: unknown): RouteRecord {
  const route = compileShape(value);
  if (!isKeySegment(route.instanceId))
    throw new Error(`route instance id ${JSON.stringify(route.instanceId)} is invalid`);
  if (route.instanceId !== instanceIdFromKey) {
    throw new Error(`route stored under ${instanceIdFromKey} names instance ${route.instanceId}`);
  }
  if (route.protocol === 'tcp' && route.port === 0) throw new Error('tcp route needs a port between 1 and 65535');
  if (route.protocol === 'http' && !route.hostname) throw new Error('http route needs a hostname');
  // The schema lets null through (Ajv's typing of optional fields); absent is fine, null is not.
  if (route.limits === null) throw new Error('route record /limits must be an object with maxSessions, not null');
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
