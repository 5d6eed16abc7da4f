import { type InstanceRecord, isKeySegment, type Versioned } from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { notFound } from './osb-errors.js';

/**
 * The live instance an operator names, by id or by name (names are unique among live
 * instances), the way `GET /sf/v1/instances/:id` resolves it.
 */
export async function findInstance(
  ctx: BrokerContext,
  idOrName: string,
): Promise<Versioned<InstanceRecord> | undefined> {
  if (isKeySegment(idOrName)) {
    const byId = await ctx.instances.get(idOrName);
    if (byId) return byId;
  }
  return (await ctx.instances.list()).find((i) => i.value.name === idOrName);
}

export function instanceNotFound(idOrName: string) {
  return notFound(`no instance has the id or name ${JSON.stringify(idOrName.slice(0, 200))}`);
}

export async function requireInstance(ctx: BrokerContext, idOrName: string): Promise<Versioned<InstanceRecord>> {
  const found = await findInstance(ctx, idOrName);
  if (!found) throw instanceNotFound(idOrName);
  return found;
}
