import {
  type Etcd3,
  type InstanceRecord,
  type InstanceSecret,
  type InstanceTombstoneRecord,
  instanceCodec,
  json,
  type Keyspace,
  type OperationRecord,
  readPrefix,
  readRecord,
  readSealed,
  type SecretBox,
  sealedValue,
  secretCodec,
  tombstoneCodec,
  type Versioned,
} from '@service-foundry/core';
import type { RouterPortRange } from './config.js';
import { BrokerErrorCodes } from './errors.js';
import { describeScope, holdsName } from './instance-scope.js';
import { concurrencyError, conflict, OsbError } from './osb-errors.js';

/** Transactions lost to concurrent writers before we give up and let the platform retry. */
const maxAttempts = 10;

/** The end of the key range holding every key that starts with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

export type CreateOutcome =
  | { created: true; record: InstanceRecord }
  | { created: false; existing: Versioned<InstanceRecord> };

export type DeprovisionOutcome =
  | { state: 'absent' }
  | { state: 'started'; record: InstanceRecord }
  | { state: 'already'; record: InstanceRecord };

/**
 * The broker's writes to instance state. Each is one etcd transaction comparing what its
 * decision was based on, retried from a fresh read when another writer got there first.
 */
export class InstanceStore {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly portRange: RouterPortRange,
    private readonly box: SecretBox,
  ) {}

  get(id: string): Promise<Versioned<InstanceRecord> | undefined> {
    return readRecord(this.client, instanceCodec, this.keys.instance(id));
  }

  /** The record that `id` existed and was deleted, while its lease lasts. */
  async tombstone(id: string): Promise<InstanceTombstoneRecord | undefined> {
    return (await readRecord(this.client, tombstoneCodec, this.keys.tombstone(id)))?.value;
  }

  async secret(id: string): Promise<InstanceSecret | undefined> {
    return (await readSealed(this.client, this.box, secretCodec, this.keys.secret(id)))?.value;
  }

  async list(): Promise<Versioned<InstanceRecord>[]> {
    return [...(await readPrefix(this.client, instanceCodec, this.keys.instances())).items.values()];
  }

  /**
   * Creates the instance, its secret and its router port together, or reports the instance
   * that already has this id. The transaction fails (and is retried) if any instance was
   * written after the names were checked, so two concurrent requests cannot both take one
   * name in one scope, and if the chosen port was taken meanwhile.
   */
  async create(draft: Omit<InstanceRecord, 'routerPort'>, secret: InstanceSecret): Promise<CreateOutcome> {
    const instanceKey = this.keys.instance(draft.id);
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const instances = await readPrefix(this.client, instanceCodec, this.keys.instances());
      const existing = instances.items.get(instanceKey);
      if (existing) return { created: false, existing };
      // Names are unique per scope. The answer never names the holder's id: the caller is
      // told about its own scope only, never which instance of which tenant it ran into.
      if ([...instances.items.values()].some((i) => holdsName(i.value, draft.name, draft.scope))) {
        throw conflict(
          `an instance named ${JSON.stringify(draft.name)} already exists in ${describeScope(draft.scope)}; choose another name`,
        );
      }
      const port = await this.#freeRouterPort();
      const record: InstanceRecord = { ...draft, routerPort: port };
      const res = await this.client.kv.txn({
        compare: [
          { key: Buffer.from(instanceKey), target: 'Create', result: 'Equal', create_revision: 0 },
          {
            key: Buffer.from(this.keys.instances()),
            range_end: prefixEnd(this.keys.instances()),
            target: 'Mod',
            result: 'Less',
            mod_revision: String(BigInt(instances.revision) + 1n),
          },
          { key: Buffer.from(this.keys.routerPort(port)), target: 'Create', result: 'Equal', create_revision: 0 },
        ],
        success: [
          { request_put: { key: Buffer.from(instanceKey), value: Buffer.from(json(record)) } },
          {
            request_put: {
              key: Buffer.from(this.keys.secret(draft.id)),
              value: Buffer.from(sealedValue(this.box, this.keys.secret(draft.id), secret)),
            },
          },
          { request_put: { key: Buffer.from(this.keys.routerPort(port)), value: Buffer.from(json(draft.id)) } },
        ],
        failure: [],
      });
      if (res.succeeded) return { created: true, record };
    }
    throw concurrencyError('too many concurrent changes to instances; retry the request');
  }

  /** The lowest router port in the configured range that no instance holds. */
  async #freeRouterPort(): Promise<number> {
    const taken = new Set<number>();
    // Keyspace has no method for the router-ports prefix; derive it from a port key so the
    // key layout still lives in one place (core could grow `routerPorts()`).
    const prefix = this.keys.routerPort(0).slice(0, -1);
    const res = await this.client.getAll().prefix(prefix).keys();
    for (const key of res) taken.add(Number(key.slice(prefix.length)));
    for (let port = this.portRange.min; port <= this.portRange.max; port++) {
      if (!taken.has(port)) return port;
    }
    throw new OsbError(
      503,
      'RouterPortsExhausted',
      `every router port from ${this.portRange.min} to ${this.portRange.max} is in use; an operator must widen routerPortRange`,
      BrokerErrorCodes.unavailable,
    );
  }

  /**
   * Marks the instance for teardown (the controller does the rest). `check` sees the current
   * record first and may throw to reject the request without changing anything.
   */
  async deprovision(
    id: string,
    operation: OperationRecord,
    check: (current: InstanceRecord) => void,
  ): Promise<DeprovisionOutcome> {
    const key = this.keys.instance(id);
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const current = await this.get(id);
      if (!current) return { state: 'absent' };
      check(current.value);
      if (current.value.phase === 'deprovisioning') return { state: 'already', record: current.value };
      const record: InstanceRecord = {
        ...current.value,
        phase: 'deprovisioning',
        message: 'deprovisioning',
        operation,
      };
      const res = await this.client
        .if(key, 'Mod', '==', current.modRevision)
        .then(this.client.put(key).value(json(record)))
        .commit();
      if (res.succeeded) return { state: 'started', record };
    }
    throw concurrencyError(`instance ${id} is changing too often to deprovision; retry the request`);
  }

  /**
   * Applies `change` to the current record in one transaction comparing its revision,
   * retried from a fresh read; `change` may throw to reject without writing, or return the
   * record it was given to write nothing.
   */
  async update(id: string, change: (current: InstanceRecord) => InstanceRecord): Promise<InstanceRecord | undefined> {
    const key = this.keys.instance(id);
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const current = await this.get(id);
      if (!current) return undefined;
      const record = change(current.value);
      if (record === current.value) return record;
      const res = await this.client
        .if(key, 'Mod', '==', current.modRevision)
        .then(this.client.put(key).value(json(record)))
        .commit();
      if (res.succeeded) return record;
    }
    throw concurrencyError(`instance ${id} is changing too often to update; retry the request`);
  }
}
