import { configCompiler } from '@service-foundry/core';

export interface SchedulerConfig {
  /** etcd client URLs. */
  etcdEndpoints: string[];
  /** @default '/sf' */
  keyspaceRoot: string;
  /** Name recorded on placements and locks. @default 'scheduler-<pid>' */
  name: string;
  /** Full convergence pass interval, besides passes triggered by watches. @default 2000 */
  intervalMs: number;
  /** TTL of the session lease behind node mutexes. @default 10 */
  lockTtlSeconds: number;
  /** A provision that has not succeeded by then is marked failed. @default 300000 */
  provisionTimeoutMs: number;
  /** Services catalog folder. @default services-catalog/ of this checkout */
  catalogDir: string;
  /** Run the controller (primary election, routes, teardown) in this process. @default true */
  controller: boolean;
}

export const compileSchedulerConfig = configCompiler<SchedulerConfig>('scheduler config', {
  type: 'object',
  additionalProperties: false,
  required: ['etcdEndpoints'],
  properties: {
    etcdEndpoints: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
    keyspaceRoot: { type: 'string', default: '/sf', pattern: '^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$' },
    name: { type: 'string', default: `scheduler-${process.pid}`, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    intervalMs: { type: 'integer', default: 2000, minimum: 50 },
    lockTtlSeconds: { type: 'integer', default: 10, minimum: 2 },
    provisionTimeoutMs: { type: 'integer', default: 300_000, minimum: 1000 },
    catalogDir: { type: 'string', default: '', minLength: 0 },
    controller: { type: 'boolean', default: true },
  },
});
