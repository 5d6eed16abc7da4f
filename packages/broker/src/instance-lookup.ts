import { type InstanceRecord, isKeySegment, type Versioned } from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { describeScope } from './instance-scope.js';
import { conflict, notFound } from './osb-errors.js';

/**
 * The one resolver of what an operator names, used by every `/sf/v1/instances/:id…` route
 * (and so by `sf`, which always asks the broker): an instance id first (ids are unique
 * cluster-wide), else a name. Names are unique per scope only, so a name held in two
 * scopes is a 409 listing them, never a silent pick.
 */
export async function findInstance(
  ctx: BrokerContext,
  idOrName: string,
): Promise<Versioned<InstanceRecord> | undefined> {
  if (isKeySegment(idOrName)) {
    const byId = await ctx.instances.get(idOrName);
    if (byId) return byId;
  }
  return pickByName(await ctx.instances.list(), idOrName);
}

/** The instance named `name`, from a listing; 409 when several scopes use the name. */
export function pickByName<T extends Versioned<InstanceRecord> | InstanceRecord>(
  instances: readonly T[],
  name: string,
): T | undefined {
  const recordOf = (i: T): InstanceRecord => ('value' in i ? i.value : i) as InstanceRecord;
  const named = instances.filter((i) => recordOf(i).name === name);
  if (named.length <= 1) return named[0];
  const where = named
    .map(recordOf)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .map((r) => `${describeScope(r.scope)} (id ${r.id})`);
  throw conflict(
    `${named.length} instances are named ${JSON.stringify(name.slice(0, 200))}: in ${where.join('; in ')}; name the one you mean by its id`,
  );
}

export function instanceNotFound(idOrName: string) {
  return notFound(`no instance has the id or name ${JSON.stringify(idOrName.slice(0, 200))}`);
}

export async function requireInstance(ctx: BrokerContext, idOrName: string): Promise<Versioned<InstanceRecord>> {
  const found = await findInstance(ctx, idOrName);
  if (!found) throw instanceNotFound(idOrName);
  return found;
}
