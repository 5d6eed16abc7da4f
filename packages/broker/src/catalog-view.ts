import type { Catalog, OsbPlan, OsbService } from '@service-foundry/core';
import { fieldSince, newestMinor } from './osb-version.js';

/** Service fields from newer OSB versions, with the version that added each. */
const serviceFields: ReadonlyArray<[keyof OsbService, number]> = [
  ['instances_retrievable', fieldSince.retrievable],
  ['bindings_retrievable', fieldSince.retrievable],
  ['allow_context_updates', fieldSince.allowContextUpdates],
];

/** Plan fields from newer OSB versions, with the version that added each. */
const planFields: ReadonlyArray<[keyof OsbPlan, number]> = [
  ['schemas', fieldSince.planSchemas],
  ['plan_updateable', fieldSince.planUpdateable],
  ['maximum_polling_duration', fieldSince.maximumPollingDuration],
  ['maintenance_info', fieldSince.maintenanceInfo],
  ['binding_rotatable', fieldSince.bindingRotation],
];

function without<T extends object>(object: T, fields: ReadonlyArray<[keyof T, number]>, minor: number): T {
  const copy = { ...object };
  for (const [field, since] of fields) if (minor < since) delete copy[field];
  return copy;
}

/**
 * `GET /v2/catalog` as each OSB version sees it: a platform gets the catalog's fields of
 * its version and older, never one it cannot know. Built once per version asked for.
 */
export class CatalogView {
  readonly #documents = new Map<number, { services: OsbService[] }>();

  constructor(private readonly catalog: Catalog) {}

  /** The document for OSB 2.`minor`. */
  for(minor: number = newestMinor): { services: OsbService[] } {
    let document = this.#documents.get(minor);
    if (!document) {
      const services = this.catalog.osbCatalog().services.map((service) => ({
        ...without(service, serviceFields, minor),
        plans: service.plans.map((plan) => without(plan, planFields, minor)),
      }));
      document = { services };
      this.#documents.set(minor, document);
    }
    return document;
  }
}
