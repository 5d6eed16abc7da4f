import type { InstanceSummary } from '@service-foundry/api';
import type { OsbService } from '@service-foundry/core';
import { type BrokerClient, bindingIdFor } from '../broker-client.js';
import { type Command, parametersOption } from '../command.js';
import { UsageError } from '../errors.js';
import { printJson, say } from '../output.js';
import { client, findInstance } from './services.js';

export interface Credentials {
  host: string;
  port: number;
  database?: string;
  username: string;
  password: string;
  uri: string;
  /** Every router (they serve the same port); `host` is the first. */
  hosts?: Array<{ host: string; port: number }>;
  [more: string]: unknown;
}

const keyName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

async function ids(broker: BrokerClient, instance: InstanceSummary): Promise<{ service_id: string; plan_id: string }> {
  const { services } = await broker.get<{ services: OsbService[] }>('/v2/catalog');
  const offering = services.find((s) => s.name === instance.service);
  const plan = offering?.plans.find((p) => p.name === instance.plan);
  if (!offering || !plan) throw new UsageError(`the catalog no longer offers ${instance.service} ${instance.plan}`);
  return { service_id: offering.id, plan_id: plan.id };
}

/** Creates (or gets again: the same request is idempotent) the key `key` of an instance. */
export async function createKeyOf(
  broker: BrokerClient,
  instance: InstanceSummary,
  key: string,
  parameters: Record<string, unknown> = {},
): Promise<{ created: boolean; credentials: Credentials }> {
  if (!keyName.test(key)) throw new UsageError(`KEY must match ${keyName}`);
  const res = await broker.request<{ credentials: Credentials }>(
    'PUT',
    `/v2/service_instances/${instance.id}/service_bindings/${bindingIdFor(instance.id, key)}`,
    { ...(await ids(broker, instance)), context: { platform: 'service-foundry', binding_name: key }, parameters },
  );
  return { created: res.status !== 200, credentials: res.body.credentials };
}

/** Deletes a key: its database user goes (and its sessions end); the data stays. */
export async function deleteKeyOf(broker: BrokerClient, instance: InstanceSummary, key: string): Promise<void> {
  const query = new URLSearchParams(await ids(broker, instance));
  await broker.request(
    'DELETE',
    `/v2/service_instances/${instance.id}/service_bindings/${bindingIdFor(instance.id, key)}?${query}`,
  );
}

function printCredentials(credentials: Credentials, json: boolean): void {
  if (json) {
    printJson(credentials);
    return;
  }
  for (const [key, value] of Object.entries(credentials)) say(`${`${key}:`.padEnd(10)} ${String(value)}`);
}

function createKey(name: string, summary: string): Command {
  return {
    name,
    summary,
    args: ['SERVICE_INSTANCE', 'KEY'],
    options: { c: { type: 'string' }, json: { type: 'boolean' } },
    async run([instanceName, key], options) {
      const parameters = parametersOption(options);
      const broker = await client();
      const instance = await findInstance(broker, instanceName ?? '');
      const { created, credentials } = await createKeyOf(broker, instance, key ?? '', parameters);
      if (!options.json) say(`${created ? 'Created key' : 'Key already exists'} ${key} for ${instanceName}:`);
      printCredentials(credentials, options.json === true);
    },
  };
}

export const createServiceKey = createKey(
  'create-service-key',
  'create credentials (a real database user) for an instance',
);
export const bindService = createKey('bind-service', 'same as create-service-key: bind an app by name');

/**
 * A new key that succeeds `key` (OSB binding rotation): its own user and password, the
 * old key's parameters; the old key keeps working until it is deleted.
 */
export const rotateServiceKey: Command = {
  name: 'rotate-service-key',
  summary: 'create NEW_KEY as the successor of KEY (new user and password); KEY stays valid until deleted',
  args: ['SERVICE_INSTANCE', 'KEY', 'NEW_KEY'],
  options: { json: { type: 'boolean' } },
  async run([instanceName, key, newKey], options) {
    if (!keyName.test(key ?? '') || !keyName.test(newKey ?? ''))
      throw new UsageError(`KEY and NEW_KEY must match ${keyName}`);
    const broker = await client();
    const instance = await findInstance(broker, instanceName ?? '');
    const res = await broker.request<{ credentials: Credentials }>(
      'PUT',
      `/v2/service_instances/${instance.id}/service_bindings/${bindingIdFor(instance.id, newKey ?? '')}`,
      {
        ...(await ids(broker, instance)),
        predecessor_binding_id: bindingIdFor(instance.id, key ?? ''),
        context: { platform: 'service-foundry', binding_name: newKey },
      },
    );
    if (!options.json) {
      say(
        `${res.status === 200 ? 'Key already exists' : 'Created key'} ${newKey} succeeding ${key} for ${instanceName}:`,
      );
    }
    printCredentials(res.body.credentials, options.json === true);
    if (!options.json)
      say(`${key} stays valid: delete it (sf delete-service-key ${instanceName} ${key}) once nothing uses it.`);
  },
};

export const serviceKey: Command = {
  name: 'service-key',
  summary: 'show the credentials of a key',
  args: ['SERVICE_INSTANCE', 'KEY'],
  options: { json: { type: 'boolean' } },
  async run([instanceName, key], options) {
    const broker = await client();
    const instance = await findInstance(broker, instanceName ?? '');
    const { credentials } = await broker.get<{ credentials: Credentials }>(
      `/v2/service_instances/${instance.id}/service_bindings/${bindingIdFor(instance.id, key ?? '')}`,
    );
    printCredentials(credentials, options.json === true);
  },
};

function deleteKey(name: string, summary: string): Command {
  return {
    name,
    summary,
    args: ['SERVICE_INSTANCE', 'KEY'],
    async run([instanceName, key]) {
      const broker = await client();
      const instance = await findInstance(broker, instanceName ?? '');
      await deleteKeyOf(broker, instance, key ?? '');
      say(`Deleted key ${key}: its database user is gone; data it created stays with the instance.`);
    },
  };
}

export const deleteServiceKey = deleteKey('delete-service-key', 'delete a key and its database user');
export const unbindService = deleteKey('unbind-service', 'same as delete-service-key');
