import {
  type Catalog,
  type CatalogEntry,
  CatalogError,
  describeAjvErrors,
  type OsbPlan,
  type PlanSizing,
} from '@service-foundry/core';
import ajvDraft04, { type ValidateFunction } from 'ajv-draft-04';
import { checkPlanMaintenance } from './maintenance-info.js';
import { badRequest } from './osb-errors.js';

/**
 * OSB plan schemas are JSON Schema draft-04. Platform input must be taken as given: no type
 * coercion, no defaults filled in, no unknown parameters silently dropped (the plan's
 * `additionalProperties: false` makes them errors instead). Annotations OSB schemas commonly
 * carry are not errors, hence strict: false.
 */
const ajv = new ajvDraft04.default({
  strict: false,
  allErrors: true,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
});

export type ParameterSchemaKind = 'instance create' | 'instance update' | 'binding create';

/** A catalog plan with its parameter validators, compiled once at startup. */
export interface ResolvedPlan {
  entry: CatalogEntry;
  plan: OsbPlan;
  sizing: PlanSizing;
  validators: Partial<Record<ParameterSchemaKind, ValidateFunction>>;
}

function compile(schema: Record<string, unknown> | undefined, where: string): ValidateFunction | undefined {
  if (!schema) return undefined;
  try {
    return ajv.compile(schema);
  } catch (error) {
    throw new CatalogError(`${where}: parameter schema does not compile: ${(error as Error).message}`);
  }
}

export class PlanRegistry {
  readonly #plans = new Map<string, ResolvedPlan>();
  readonly #services = new Set<string>();

  constructor(catalog: Catalog) {
    for (const entry of catalog.entries) {
      this.#services.add(entry.osb.id);
      for (const plan of entry.osb.plans) {
        const where = `${entry.dir}/service.json plan ${plan.name}`;
        const sizing = entry.plans[plan.name];
        if (!sizing) throw new CatalogError(`${where}: no sizing under "plans"`);
        checkPlanMaintenance(plan, where);
        const schemas = plan.schemas;
        this.#plans.set(PlanRegistry.#key(entry.osb.id, plan.id), {
          entry,
          plan,
          sizing,
          validators: {
            'instance create': compile(schemas?.service_instance?.create?.parameters, where),
            'instance update': compile(schemas?.service_instance?.update?.parameters, where),
            'binding create': compile(schemas?.service_binding?.create?.parameters, where),
          } as ResolvedPlan['validators'],
        });
      }
    }
  }

  static #key(serviceId: string, planId: string): string {
    return `${serviceId}\u0000${planId}`;
  }

  /** The plan a request names; unknown ids are the platform's mistake (400). */
  resolve(serviceId: string, planId: string): ResolvedPlan {
    if (!this.#services.has(serviceId)) {
      throw badRequest(`service_id ${JSON.stringify(serviceId)} is not in this broker's catalog`);
    }
    const resolved = this.#plans.get(PlanRegistry.#key(serviceId, planId));
    if (!resolved) {
      throw badRequest(`plan_id ${JSON.stringify(planId)} is not a plan of service ${JSON.stringify(serviceId)}`);
    }
    return resolved;
  }

  /** The plan of an existing record, if the catalog still has it. */
  find(serviceId: string, planId: string): ResolvedPlan | undefined {
    return this.#plans.get(PlanRegistry.#key(serviceId, planId));
  }
}

/** Checks `parameters` against the plan's schema of that kind; a plan without one accepts any object. */
export function validateParameters(plan: ResolvedPlan, kind: ParameterSchemaKind, parameters: unknown): void {
  const validate = plan.validators[kind];
  if (!validate || validate(parameters)) return;
  const problems = describeAjvErrors(validate.errors).map(
    (p) => `parameters${p.startsWith('(root)') ? p.slice(6) : p}`,
  );
  throw badRequest(
    `invalid parameters for plan ${plan.entry.osb.name}/${plan.plan.name} (${kind}): ${problems.join('; ')}`,
  );
}

/** Replicas asked for in the parameters, else the plan's default. */
export function desiredReplicas(plan: ResolvedPlan, parameters: Record<string, unknown>): number {
  const asked = parameters.replicas;
  if (asked === undefined) return plan.sizing.replicas;
  if (typeof asked !== 'number' || !Number.isInteger(asked) || asked < 1 || asked > 9) {
    throw badRequest('parameters.replicas must be an integer from 1 to 9');
  }
  return asked;
}
