import type {
  AssignmentRecord,
  CatalogEntry,
  InstanceSecret,
  Logger,
  ServiceReplicationRecipe,
} from '@service-foundry/core';
import type { ReplicaRef } from './container-spec.js';
import type { ContainerState } from './docker-runtime.js';
import type { ReplicaStep } from './replica-actions.js';
import { newPassFacts, type PassFacts, type ReplicaObservation } from './replica-observation.js';

/** One reconcile pass of one replica: what it works on, and what it has found so far. */
export interface ReplicaPass {
  ref: ReplicaRef;
  assignment: AssignmentRecord;
  entry: CatalogEntry;
  /** The replication recipe, for natively replicated services only. */
  recipe?: ServiceReplicationRecipe;
  signal: AbortSignal;
  facts: PassFacts;
  /** The replica's container as last inspected. */
  container?: ContainerState;
  /** An action changed the container: the next look inspects it again. */
  containerChanged: boolean;
  /** Volumes this pass created, empty until a container fills them. */
  createdVolumes: Set<string>;
  /** The instance secret once looked up; the executor keeps it, decisions never see it. */
  secret?: InstanceSecret;
}

export type ReplicaDecide = (assignment: AssignmentRecord, observed: ReplicaObservation, now: number) => ReplicaStep;

export interface PassRunner {
  observe(pass: ReplicaPass): Promise<ReplicaObservation>;
  execute(pass: ReplicaPass, step: ReplicaStep): Promise<void>;
}

/** Far more than the longest path (rebuild, create, start, readiness, promote, follow, configure). */
const maxLooks = 32;

export function newPass(
  fields: Pick<ReplicaPass, 'ref' | 'assignment' | 'entry' | 'signal'> & {
    recipe?: ServiceReplicationRecipe | undefined;
    container?: ContainerState | undefined;
  },
): ReplicaPass {
  const { recipe, container, ...rest } = fields;
  return {
    ...rest,
    ...(recipe ? { recipe } : {}),
    ...(container ? { container } : {}),
    facts: newPassFacts(),
    containerChanged: false,
    createdVolumes: new Set(),
  };
}

/** Observe, decide, execute; again until a step ends the pass. */
export async function runPass(
  pass: ReplicaPass,
  decide: ReplicaDecide,
  runner: PassRunner,
  log: Logger,
): Promise<void> {
  for (;;) {
    const observed = await runner.observe(pass);
    const step = decide(pass.assignment, observed, Date.now());
    pass.facts.looks++;
    await runner.execute(pass, step);
    if (step.next === 'end-pass') return;
    if (pass.facts.looks >= maxLooks) {
      const { instanceId, ordinal } = pass.ref;
      log.warn(
        { instanceId, ordinal, looks: pass.facts.looks },
        'reconcile pass did not settle; the next pass goes on',
      );
      return;
    }
  }
}
