/**
 * Prometheus families of the broker (docs/metrics.md): every HTTP request by method, route
 * template and status, and how long asynchronous operations took, by type and result.
 *
 * Operations finish in the controller, not in the broker, so their durations come from a
 * watch of the instances: an operation observed leaving `in progress` (or a deprovision
 * whose instance disappears) is measured from its `startedAt`. Only operations that end
 * while this broker runs are counted.
 */

import {
  backupCodec,
  type Etcd3,
  type InstanceRecord,
  instanceCodec,
  type Keyspace,
  type Logger,
  type OperationRecord,
  PrefixMirror,
  readPrefix,
} from '@service-foundry/core';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The route template (`/v2/service_instances/:instance_id`), never the raw URL: bounded labels. */
function routeOf(request: { routeOptions: { url?: string | undefined } }): string {
  return request.routeOptions.url ?? 'unmatched';
}

/** Adds the request families to `app` (call before the routes are registered). */
export function instrumentRequests(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'sf_broker_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'sf_broker_request_duration_seconds',
    help: 'Seconds from a request to its answer, by method and route template.',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: routeOf(request) };
    requests.inc({ ...labels, status: String(reply.statusCode) });
    durations.observe(labels, reply.elapsedTime / 1000);
  });
}

/** Watches instances and observes `sf_broker_operation_duration_seconds{type,result}`; returns the stop. */
export async function watchOperations(
  client: Etcd3,
  keys: Keyspace,
  registry: Registry,
  log: Logger,
): Promise<() => Promise<void>> {
  const durations = new Histogram({
    name: 'sf_broker_operation_duration_seconds',
    help: 'Seconds from the start of an instance operation to its end, by type and result.',
    labelNames: ['type', 'result'],
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const mirror = new PrefixMirror<InstanceRecord>(client, instanceCodec, keys.instances(), log);
  // The operation in progress per instance key, as last seen.
  const running = new Map<string, OperationRecord>();
  mirror.on('change', (changes) => {
    for (const { key, current } of changes) {
      const before = running.get(key);
      const after = current?.value.operation;
      if (after?.state === 'in progress') running.set(key, after);
      else running.delete(key);
      if (!before) continue;
      let result: string | undefined;
      if (!after && before.type === 'deprovision') result = 'succeeded';
      else if (after && after.id === before.id && after.state !== 'in progress') result = after.state;
      if (!result) continue;
      const seconds = (Date.now() - Date.parse(before.startedAt)) / 1000;
      if (Number.isFinite(seconds) && seconds >= 0) durations.observe({ type: before.type, result }, seconds);
    }
  });
  // Read at scrape time (one etcd range read): the newest completed backup per live instance.
  new Gauge({
    name: 'sf_backup_age_seconds',
    help: "Seconds since the instance's newest completed backup; absent for instances without one.",
    labelNames: ['instance'],
    registers: [registry],
    async collect() {
      this.reset();
      const backups = await readPrefix(client, backupCodec, keys.backups());
      const newest = new Map<string, number>();
      for (const { value } of backups.items.values()) {
        if (value.state !== 'completed' || !value.completedAt) continue;
        const at = Date.parse(value.completedAt);
        if (at > (newest.get(value.instanceId) ?? 0)) newest.set(value.instanceId, at);
      }
      for (const [key] of mirror.items) {
        const id = key.slice(keys.instances().length);
        const at = newest.get(id);
        if (at !== undefined) this.set({ instance: id }, Math.max(0, (Date.now() - at) / 1000));
      }
    },
  });
  await mirror.start();
  return () => mirror.close();
}
