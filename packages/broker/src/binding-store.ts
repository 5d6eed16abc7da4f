import {
  type BindingRecord,
  bindingCodec,
  type Etcd3,
  type Keyspace,
  readSealed,
  readSealedPrefix,
  type SecretBox,
  sealedValue,
  type Versioned,
} from '@service-foundry/core';

/**
 * Binding records in etcd, sealed whole (they hold the binding's password). The user
 * inside the service is the driver's business.
 */
export class BindingStore {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly box: SecretBox,
  ) {}

  get(instanceId: string, bindingId: string): Promise<Versioned<BindingRecord> | undefined> {
    return readSealed(this.client, this.box, bindingCodec, this.keys.binding(instanceId, bindingId));
  }

  async list(instanceId: string): Promise<BindingRecord[]> {
    const items = await readSealedPrefix(this.client, this.box, bindingCodec, this.keys.instanceBindings(instanceId));
    return items.map((item) => item.value);
  }

  /**
   * Stores a new binding unless one with its id exists or the instance is gone. The instance
   * check matters: the controller deletes an instance's bindings in the same transaction as
   * the instance, and a binding written after that would never be cleaned up. A rotation's
   * successor is stored only while its predecessor still exists.
   */
  async create(record: BindingRecord): Promise<boolean> {
    const key = this.keys.binding(record.instanceId, record.id);
    let txn = this.client.if(key, 'Create', '==', 0).and(this.keys.instance(record.instanceId), 'Version', '>', 0);
    if (record.predecessorId !== undefined) {
      txn = txn.and(this.keys.binding(record.instanceId, record.predecessorId), 'Version', '>', 0);
    }
    const res = await txn.then(this.client.put(key).value(sealedValue(this.box, key, record))).commit();
    return res.succeeded;
  }

  /** Deletes the binding if it is still the version the caller acted on. */
  async delete(binding: Versioned<BindingRecord>): Promise<boolean> {
    const res = await this.client
      .if(binding.key, 'Mod', '==', binding.modRevision)
      .then(this.client.delete().key(binding.key))
      .commit();
    return res.succeeded;
  }
}
