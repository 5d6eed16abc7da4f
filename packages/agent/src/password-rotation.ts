import {
  type AppliedPasswords,
  type AssignmentRecord,
  BadRecordError,
  type CatalogEntry,
  type Etcd3,
  type EventLog,
  type InstanceSecret,
  type Keyspace,
  type Logger,
  openSealed,
  PrefixMirror,
  type RotationPhase,
  type SealedSecret,
  type SecretBox,
  SecretBoxError,
  sealedEnvelopeCodec,
  secretCodec,
  secretGeneration,
  type Versioned,
} from '@service-foundry/core';
import { containerSecrets, type NodeIdentity, type ReplicaRef } from './container-spec.js';
import type { DockerRuntime } from './docker-runtime.js';
import { describeFailure } from './replication-commands.js';
import { fillCommand } from './replication-spec.js';
import type { StatusWriter } from './status-writer.js';

export interface PasswordRotationDeps {
  client: Etcd3;
  keys: Keyspace;
  secrets: SecretBox;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  /** Deadline of one `rotatePasswords` command. */
  commandTimeoutMs: number;
}

/** What a secret record asks of every running server of its instance. */
function wantedOf(secret: InstanceSecret): AppliedPasswords | undefined {
  const generation = secretGeneration(secret);
  if (generation === 0) return undefined;
  const phase: RotationPhase = secret.previous ? 'accept-previous' : 'new-only';
  return { generation, phase };
}

function sameApplied(a: AppliedPasswords | undefined, b: AppliedPasswords): boolean {
  return a?.generation === b.generation && a.phase === b.phase;
}

/**
 * Brings the passwords inside a running server in line with the instance's secret record
 * (`sf rotate-credentials`, docs/security.md). The broker writes a new generation with the
 * replaced passwords as `previous`; each agent puts the new files (and the previous ones)
 * into its running containers and runs the catalog's `rotatePasswords accept-previous`;
 * once every replica reports it, the broker drops `previous` and each agent runs
 * `rotatePasswords new-only`. Called by the reconciler for a replica it left running, so
 * it never races a stop or a re-create of the same container (ReplicaQueue).
 *
 * Done once per container and step: after a restart of the agent, or a container made
 * again on the same volume, it runs again (the command is idempotent), since a volume may
 * hold a server configured with an older generation.
 */
export class PasswordRotation {
  readonly #records: PrefixMirror<SealedSecret>;
  /**
   * Replica id → what its container has taken on, and in which role: a step taken as a
   * replica is taken again once it is promoted, since only a primary sets role passwords
   * (Postgres) and an async promotion may have lost the old primary's change.
   */
  readonly #applied = new Map<string, { containerId: string; role: string | undefined; passwords: AppliedPasswords }>();
  /** Replica id → the last failure reported, so a retried failure is logged once per step. */
  readonly #reported = new Map<string, string>();

  constructor(private readonly deps: PasswordRotationDeps) {
    this.#records = new PrefixMirror(deps.client, sealedEnvelopeCodec, deps.keys.secrets(), deps.log);
  }

  /** `onChange`: a secret record changed (its instance's replicas should be reconciled). */
  async start(onChange: () => void): Promise<void> {
    this.#records.on('change', () => onChange());
    await this.#records.start();
  }

  stop(): Promise<void> {
    return this.#records.close();
  }

  /**
   * Runs the rotation step the secret asks for in the replica's running container, unless
   * it already did. A failure is logged and recorded as an event; the next pass retries.
   */
  async converge(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    containerId: string,
    replicated: boolean,
  ): Promise<void> {
    const command = entry.rotatePasswords;
    const status = this.deps.statuses.current(ref);
    if (!command || status?.state !== 'running' || status.containerId !== containerId) return;
    const secret = this.#secretOf(ref.instanceId);
    const wanted = secret && wantedOf(secret.value);
    if (!secret || !wanted) return;
    const id = `${ref.instanceId}/${ref.ordinal}`;
    const done = this.#applied.get(id);
    const role = status.role;
    if (done?.containerId === containerId && done.role === role && sameApplied(done.passwords, wanted)) return;

    const { docker, statuses, log, identity } = this.deps;
    const step = `${wanted.phase} (generation ${wanted.generation})`;
    const argv = fillCommand(command, { phase: wanted.phase });
    const failure = await (async () => {
      try {
        await docker.putSecretFiles(
          containerId,
          containerSecrets(identity, assignment, entry, secret.value, replicated).secretFiles,
        );
        const result = await docker.exec(containerId, argv, this.deps.commandTimeoutMs);
        return result.exitCode === 0 ? undefined : describeFailure(argv, this.deps.commandTimeoutMs, result);
      } catch (error) {
        return (error as Error).message;
      }
    })();
    const where = { instanceId: ref.instanceId, ordinal: ref.ordinal, step };
    if (failure) {
      const key = `${id}/${containerId}/${wanted.generation}/${wanted.phase}`;
      if (this.#reported.get(id) !== key) {
        this.#reported.set(id, key);
        log.warn({ ...where, reason: failure }, 'password rotation step failed; retrying on the next pass');
        await this.deps.events.record(
          'passwords-rotation-failed',
          `replica ${id}: password rotation ${step} failed: ${failure}`,
          { instanceId: ref.instanceId, node: identity.node },
        );
      }
      return;
    }
    this.#applied.set(id, { containerId, role, passwords: wanted });
    this.#reported.delete(id);
    log.info(where, 'password rotation step applied');
    await statuses.passwordsApplied(ref, containerId, wanted);
  }

  /** Forgets a replica whose container is gone (teardown). */
  forget(ref: ReplicaRef): void {
    this.#applied.delete(`${ref.instanceId}/${ref.ordinal}`);
    this.#reported.delete(`${ref.instanceId}/${ref.ordinal}`);
  }

  /** The instance's secret as last seen by the watch, opened; undefined when absent or unreadable. */
  #secretOf(instanceId: string): Versioned<InstanceSecret> | undefined {
    const sealed = this.#records.items.get(this.deps.keys.secret(instanceId));
    if (!sealed) return undefined;
    try {
      return openSealed(this.deps.secrets, secretCodec, sealed);
    } catch (error) {
      if (!(error instanceof BadRecordError) && !(error instanceof SecretBoxError)) throw error;
      // The container lifecycle reports an unreadable secret when it creates the container.
      return undefined;
    }
  }
}
