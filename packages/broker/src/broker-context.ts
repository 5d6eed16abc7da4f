import type { Catalog, Etcd3, EventLog, Keyspace, Logger, SecretBox } from '@service-foundry/core';
import type { BindingStore } from './binding-store.js';
import type { BrokerConfig } from './config.js';
import type { InstanceStore } from './instance-store.js';
import type { PlanRegistry } from './params-validation.js';

/** Everything a route needs; built once by startBroker. */
export interface BrokerContext {
  config: Readonly<BrokerConfig>;
  catalog: Catalog;
  plans: PlanRegistry;
  instances: InstanceStore;
  bindings: BindingStore;
  client: Etcd3;
  keys: Keyspace;
  events: EventLog;
  log: Logger;
  /** Seals the credentials the broker stores in etcd. */
  secrets: SecretBox;
}
