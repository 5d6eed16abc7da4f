import type { FastifyRequest } from 'fastify';
import { badRequest } from './osb-errors.js';
import { speaks } from './osb-version.js';
import type { ResolvedPlan } from './params-validation.js';

/**
 * OSB 2.17 binding rotation: a bind request naming `predecessor_binding_id`. No plan is
 * `binding_rotatable` yet (the catalog says false, so a platform MUST NOT ask); a request
 * that asks anyway is refused with 400 before anything is created, instead of silently
 * making an unrelated binding. From a platform older than 2.17 the field is unknown and
 * ignored, as OSB requires of unknown fields.
 */
export function refuseUnsupportedRotation(request: FastifyRequest, plan: ResolvedPlan, body: unknown): void {
  const predecessor = (body as { predecessor_binding_id?: unknown }).predecessor_binding_id;
  if (predecessor === undefined || !speaks(request, 'bindingRotation')) return;
  if (typeof predecessor !== 'string' || predecessor.length === 0) {
    throw badRequest('predecessor_binding_id must be a non-empty string');
  }
  if (plan.plan.binding_rotatable !== true) {
    throw badRequest(
      `plan ${plan.entry.osb.name}/${plan.plan.name} is not binding_rotatable: bindings cannot be rotated; create a new binding and delete the old one`,
    );
  }
}
