import assert from 'node:assert/strict';
import { readSealed, secretCodec } from '@service-foundry/core';
import { secretBox } from '@service-foundry/test-support';
import { postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';
import { type LocalPostgres, type LocalPostgresOptions, startLocalPostgres } from './local-postgres.js';

/**
 * An instance the broker provisioned and a real PostgreSQL standing in for it behind the
 * router: the instance's router port is the server's port, the server's admin password the
 * one the broker generated (as the agent would pass it to the container), and the instance
 * ready, so bindings go through the broker's real driver.
 */
export interface PostgresInstance {
  h: Harness;
  postgres: LocalPostgres;
  close(): Promise<void>;
}

/** `config`: broker config on top of the router port range. */
export async function startPostgresInstance(
  instanceId: string,
  config: Record<string, unknown>,
  options: LocalPostgresOptions = {},
): Promise<PostgresInstance> {
  const postgres = await startLocalPostgres(undefined, options);
  let h: Harness | undefined;
  try {
    h = await startHarness({ routerPortRange: { min: postgres.port, max: postgres.port }, ...config });
    const res = await h.provision(instanceId);
    assert.equal(res.status, 202, res.text);
    const secret = (await readSealed(h.client, secretBox, secretCodec, h.keys.secret(instanceId)))?.value;
    assert.ok(secret, 'the instance secret is stored');
    await postgres.setAdminPassword(secret.adminPassword);
    await h.markReady(instanceId);
  } catch (error) {
    await h?.close();
    await postgres.stop();
    throw error;
  }
  const harness = h;
  return {
    h: harness,
    postgres,
    close: async () => {
      await harness.close();
      await postgres.stop();
    },
  };
}

export function bindingPath(instanceId: string, bindingId: string): string {
  return `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`;
}

/** The DELETE path of a binding, with the ids OSB requires. */
export function unbindPath(instanceId: string, bindingId: string): string {
  return `${bindingPath(instanceId, bindingId)}?service_id=${postgresServiceId}&plan_id=${smallPlanId}`;
}

/** A bind request body for an app, `extra` on top. */
export function bindBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { service_id: postgresServiceId, plan_id: smallPlanId, bind_resource: { app_guid: 'app-1' }, ...extra };
}
