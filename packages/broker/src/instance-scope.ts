import type { InstanceRecord, InstanceScope } from '@service-foundry/core';
import type { Principal } from './api-areas.js';
import { badRequest } from './osb-errors.js';

/** What a provision body says about where the instance lives (OSB 2.17). */
export interface ScopeFields {
  organization_guid?: unknown;
  space_guid?: unknown;
}

function scopeField(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (typeof value !== 'string' || value.length === 0 || value.length > 255 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(`${where} must be a string of 1 to 255 printable characters`);
  }
  return value;
}

/**
 * The scope in which a provision's name must be unique: the top-level `organization_guid`
 * and `space_guid`, which OSB 2.17 makes REQUIRED (Cloud Foundry repeats them in `context`;
 * Kubernetes sends its cluster id and namespace there). A platform that omits either gets
 * 400, whatever its `context` says. Only an operator may send neither: its instances live
 * in the operators' own scope (undefined).
 */
export function provisionScope(body: ScopeFields, principal: Principal): InstanceScope | undefined {
  const organization = scopeField(body.organization_guid, 'organization_guid');
  const space = scopeField(body.space_guid, 'space_guid');
  if (organization !== undefined && space !== undefined) return { organization, space };
  if (organization === undefined && space === undefined && principal.role === 'operator') return undefined;
  throw badRequest(
    organization === undefined && space === undefined
      ? 'organization_guid and space_guid are required (OSB 2.17): instance names are unique per organization and space'
      : `${organization === undefined ? 'organization_guid' : 'space_guid'} is required (OSB 2.17): send organization_guid and space_guid together`,
  );
}

export function sameScope(a: InstanceScope | undefined, b: InstanceScope | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.organization === b.organization && a.space === b.space;
}

/** "organization "o", space "s"", or the operators' scope, for messages. */
export function describeScope(scope: InstanceScope | undefined): string {
  if (!scope) return "the operators' scope (sf)";
  return `organization ${JSON.stringify(scope.organization)}, space ${JSON.stringify(scope.space)}`;
}

/** Whether `record` holds `name` in `scope`. */
export function holdsName(record: InstanceRecord, name: string, scope: InstanceScope | undefined): boolean {
  return record.name === name && sameScope(record.scope, scope);
}
