import type { BindingRecord, Versioned } from '@service-foundry/core';
import type { FastifyRequest } from 'fastify';
import type { BindingStore } from './binding-store.js';
import { badRequest } from './osb-errors.js';
import { speaks } from './osb-version.js';
import type { ResolvedPlan } from './params-validation.js';

/**
 * The binding a bind request rotates (OSB 2.17 `predecessor_binding_id`), or undefined for
 * an ordinary bind. From a platform older than 2.17 the field is unknown and ignored, as
 * OSB requires of unknown fields.
 */
export function predecessorOf(request: FastifyRequest, body: unknown): string | undefined {
  const predecessor = (body as { predecessor_binding_id?: unknown }).predecessor_binding_id;
  if (predecessor === undefined || !speaks(request, 'bindingRotation')) return undefined;
  if (typeof predecessor !== 'string' || predecessor.length === 0) {
    throw badRequest('predecessor_binding_id must be a non-empty string');
  }
  return predecessor;
}

/**
 * What a rotation builds on: the predecessor, which MUST be a live binding of the same
 * instance, of a plan that declares `binding_rotatable`. Anything else is the platform's
 * mistake (400) and creates nothing. The successor is a new binding with its own user and
 * password; both stay valid until each is unbound (OSB "Binding Rotation").
 */
export async function rotationBasis(
  bindings: BindingStore,
  plan: ResolvedPlan,
  instanceId: string,
  bindingId: string,
  predecessorId: string,
): Promise<Versioned<BindingRecord>> {
  if (plan.plan.binding_rotatable !== true) {
    throw badRequest(
      `plan ${plan.entry.osb.name}/${plan.plan.name} is not binding_rotatable: bindings cannot be rotated; create a new binding and delete the old one`,
    );
  }
  if (predecessorId === bindingId) throw badRequest(`binding ${bindingId} cannot be its own predecessor`);
  const predecessor = await bindings.get(instanceId, predecessorId);
  if (!predecessor) {
    throw badRequest(`predecessor_binding_id ${predecessorId} is not a binding of instance ${instanceId}`);
  }
  return predecessor;
}
