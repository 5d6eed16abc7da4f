import type { JSONSchemaType } from 'ajv';
import { isKeySegment } from '../keyspace.js';
import { defineRecord, keyTail } from './codec.js';
import { type Endpoint, epoch, optional, port } from './shared.js';

export const routeProtocols = ['tcp', 'http'] as const;
export type RouteProtocol = (typeof routeProtocols)[number];

/** What the router serves for an instance (`routes/<id>`). */
export interface RouteRecord {
  instanceId: string;
  protocol: RouteProtocol;
  /** TCP: the router's listen port. */
  port: number;
  /** HTTP: the Host header routed to this instance. */
  hostname?: string;
  target: Endpoint;
  /** Mod revision of the primary key when this route was written. */
  epoch: number;
  /**
   * Admission limits the router enforces for this route. `maxSessions`: client sessions let
   * through to the instance at a time (the plan's `connections.router`). Absent in records
   * written before limits existed: the router then applies its own `defaultMaxSessions`.
   */
  limits?: { maxSessions: number };
}

const hostnamePattern =
  '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';

const routeSchema: JSONSchemaType<RouteRecord> = {
  type: 'object',
  required: ['instanceId', 'protocol', 'port', 'target', 'epoch'],
  additionalProperties: true,
  properties: {
    instanceId: { type: 'string', minLength: 1 },
    protocol: { type: 'string', enum: routeProtocols },
    port,
    hostname: optional({ type: 'string', maxLength: 253, pattern: hostnamePattern }),
    target: {
      type: 'object',
      required: ['host', 'port'],
      additionalProperties: true,
      properties: {
        host: { type: 'string', minLength: 1, maxLength: 255 },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    epoch,
    // Limits may be absent (the router's default applies), never unreadable: a route must
    // not be served without the limits its writer meant.
    limits: optional({
      type: 'object',
      required: ['maxSessions'],
      additionalProperties: true,
      properties: { maxSessions: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
    }),
  },
};

/** A route the router could not serve although its fields have the right types. */
function routeProblems(key: string, route: RouteRecord): string[] {
  const [instanceIdFromKey] = keyTail(key, 1);
  if (!isKeySegment(route.instanceId)) return [`route instance id ${JSON.stringify(route.instanceId)} is invalid`];
  if (route.instanceId !== instanceIdFromKey) {
    return [`route stored under ${instanceIdFromKey} names instance ${route.instanceId}`];
  }
  if (route.protocol === 'tcp' && route.port === 0) return ['tcp route needs a port between 1 and 65535'];
  if (route.protocol === 'http' && !route.hostname) return ['http route needs a hostname'];
  return [];
}

export const routeCodec = defineRecord<RouteRecord>({ name: 'route', schema: routeSchema, check: routeProblems });
