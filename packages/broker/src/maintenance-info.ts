import { CatalogError, type OsbPlan } from '@service-foundry/core';
import type { FastifyRequest } from 'fastify';
import { badRequest, maintenanceInfoConflict } from './osb-errors.js';
import { speaks } from './osb-version.js';

/** Semantic Versioning 2.0.0, the pattern semver.org gives. */
const semver =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function isSemver(version: string): boolean {
  return version.length <= 256 && semver.test(version);
}

/**
 * OSB: a plan's `maintenance_info.version` MUST be a semantic version 2.0; checked once at
 * startup so that a catalog the platform would refuse is never served.
 */
export function checkPlanMaintenance(plan: OsbPlan, where: string): void {
  const info = plan.maintenance_info as unknown;
  if (info === undefined) return;
  const version = (info as { version?: unknown } | null)?.version;
  if (typeof version !== 'string' || !isSemver(version)) {
    throw new CatalogError(`${where}: maintenance_info.version must be a semantic version 2.0 (e.g. "4.0.0")`);
  }
  const description = (info as { description?: unknown }).description;
  if (description !== undefined && (typeof description !== 'string' || description.length === 0)) {
    throw new CatalogError(`${where}: maintenance_info.description must be a non-empty string`);
  }
}

/**
 * The `maintenance_info.version` a provision or update asks for, or undefined when it asks
 * for none. OSB reads only the version of that object; a platform older than 2.15 does not
 * know the field, so from it the field is ignored like any unknown one.
 */
export function askedMaintenanceVersion(request: FastifyRequest, info: unknown): string | undefined {
  if (info === undefined || !speaks(request, 'maintenanceInfo')) return undefined;
  const version = (info as { version?: unknown }).version;
  if (typeof version !== 'string' || version.length === 0) {
    throw badRequest('maintenance_info.version is required in maintenance_info and must be a non-empty string');
  }
  if (!isSemver(version)) {
    throw badRequest(`maintenance_info.version ${JSON.stringify(version.slice(0, 100))} is not a semantic version`);
  }
  return version;
}

/**
 * 422 `MaintenanceInfoConflict` unless `asked` is the version the catalog gives the plan
 * (a plan without maintenance information matches no version).
 */
export function requirePlanVersion(plan: OsbPlan, service: string, asked: string): void {
  const current = plan.maintenance_info?.version;
  if (asked === current) return;
  throw maintenanceInfoConflict(
    current === undefined
      ? `plan ${service}/${plan.name} has no maintenance_info; send none (fetch the catalog again)`
      : `maintenance_info.version ${asked} is not the version of plan ${service}/${plan.name} (${current}); fetch the catalog again`,
  );
}
