import type { RotationReplica, RotationView } from '@service-foundry/api';
import {
  ErrorCodes,
  type InstanceRecord,
  type InstanceSecret,
  json,
  type ReplicaStatus,
  readPrefix,
  readSealed,
  sealedValue,
  secretCodec,
  secretGeneration,
  statusCodec,
  type Versioned,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { BrokerErrorCodes } from './errors.js';
import { operationRecord } from './instance-checks.js';
import { concurrencyError, notFound, OsbError } from './osb-errors.js';
import { randomPassword } from './random.js';
import { checkUpdatable, runningOperation } from './update-write.js';

/**
 * Rotation of an instance's own admin and replication passwords (`sf rotate-credentials`).
 * Only the broker can open the secret, so the broker drives it; agents do the work inside
 * each running server (agent password-rotation.ts) and report what they applied.
 *
 * | step (secret record)                          | when                                              | next                                   |
 * |-----------------------------------------------|---------------------------------------------------|----------------------------------------|
 * | asked                                         | no rotation unfinished                            | generation + 1, new passwords, `previous` = the old ones; operation in progress (one txn) |
 * | asked                                         | `previous` still set (the last one did not end)   | the same generation resumes: no new passwords |
 * | accept-previous (`previous` set)              | every expected replica runs and reports the generation | `previous` dropped                |
 * | new-only (`previous` gone)                    | every expected replica reports it `new-only`      | operation succeeded                    |
 * | either                                        | the operation older than {@link rotationDeadlineMs} | operation failed; `previous` kept: asking again resumes |
 *
 * Expected replicas: every replica of a natively replicated plan, else the one server.
 */

/** How long a rotation may wait for replicas (a node may be down) before its operation fails. */
export const rotationDeadlineMs = 10 * 60_000;

const rotationRequest = { rotateCredentials: true } as const;

function isRotation(instance: InstanceRecord): boolean {
  return instance.operation.state === 'in progress' && instance.operation.request?.rotateCredentials === true;
}

/** Refused: a service whose image cannot rotate passwords. */
export function rotationRefused(description: string): OsbError {
  return new OsbError(422, 'RotationNotSupported', description, ErrorCodes.invalidInput);
}

async function readSecret(ctx: BrokerContext, id: string): Promise<Versioned<InstanceSecret> | undefined> {
  return readSealed(ctx.client, ctx.secrets, secretCodec, ctx.keys.secret(id));
}

async function readStatuses(ctx: BrokerContext, id: string): Promise<ReplicaStatus[]> {
  const read = await readPrefix(ctx.client, statusCodec, ctx.keys.instanceStatuses(id), ctx.log);
  return [...read.items.values()].map((s) => s.value).sort((a, b) => a.ordinal - b.ordinal);
}

function expectedServers(ctx: BrokerContext, instance: InstanceRecord): number {
  return ctx.catalog.replicationMode(instance.serviceName, instance.planName) === 'native' ? instance.replicas : 1;
}

/** Every expected server runs and has taken on `generation` at `phase` (or, for accept-previous, beyond). */
function allReport(
  ctx: BrokerContext,
  instance: InstanceRecord,
  statuses: readonly ReplicaStatus[],
  generation: number,
  phase: 'accept-previous' | 'new-only',
): boolean {
  const running = statuses.filter((s) => s.state === 'running');
  if (running.length < expectedServers(ctx, instance)) return false;
  return running.every(
    (s) => s.passwords?.generation === generation && (phase === 'accept-previous' || s.passwords.phase === 'new-only'),
  );
}

/** Which servers a rotation still waits for, in words. */
function waitingFor(statuses: readonly ReplicaStatus[], generation: number, phase: string): string {
  const behind = statuses.filter(
    (s) => s.state !== 'running' || s.passwords?.generation !== generation || s.passwords.phase !== phase,
  );
  if (behind.length === 0) return 'a replica that has not reported yet';
  return behind.map((s) => `replica ${s.ordinal} on ${s.node} (${s.state})`).join(', ');
}

export function rotationView(
  instance: InstanceRecord,
  secret: InstanceSecret | undefined,
  statuses: readonly ReplicaStatus[],
): RotationView {
  const generation = secret ? secretGeneration(secret) : 0;
  const replicas: RotationReplica[] = statuses.map((s) => ({
    ordinal: s.ordinal,
    node: s.node,
    state: s.state,
    passwords: s.passwords ?? null,
  }));
  const rotating = isRotation(instance);
  return {
    instanceId: instance.id,
    name: instance.name,
    generation,
    step: generation === 0 ? 'none' : secret?.previous ? 'accept-previous' : rotating ? 'new-only' : 'none',
    replicas,
    operation: rotating ? instance.operation.id : null,
    description:
      rotating || instance.operation.request?.rotateCredentials
        ? instance.operation.description
        : generation === 0
          ? 'the passwords were never rotated'
          : `the passwords are at generation ${generation}`,
  };
}

/** The rotation's view, read afresh (after a step of {@link advanceRotation}). */
export async function readRotationView(ctx: BrokerContext, id: string): Promise<RotationView | undefined> {
  await advanceRotation(ctx, id);
  const instance = await ctx.instances.get(id);
  if (!instance) return undefined;
  const [secret, statuses] = await Promise.all([readSecret(ctx, id), readStatuses(ctx, id)]);
  return rotationView(instance.value, secret?.value, statuses);
}

/**
 * Starts a rotation, resumes an unfinished one, or answers with the one running: one
 * transaction writes the operation and the new secret, comparing both records as read.
 */
export async function startRotation(
  ctx: BrokerContext,
  id: string,
  by: string,
): Promise<{ operation: string; started: boolean }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const instance = await ctx.instances.get(id);
    if (!instance) throw notFound(`instance ${id} does not exist`);
    const entry = ctx.catalog.byServiceName(instance.value.serviceName);
    if (!entry?.rotatePasswords) {
      throw rotationRefused(
        `service ${instance.value.serviceName} cannot rotate its passwords (its catalog entry has no rotatePasswords command)`,
      );
    }
    checkUpdatable(instance.value);
    const running = runningOperation(instance.value, rotationRequest);
    if (running === undefined && instance.value.image !== entry.runtime.image) {
      // An older image may lack the command: every server must be able to take the step.
      throw rotationRefused(
        `${instance.value.name} runs image ${instance.value.image ?? '(unrecorded)'}, not the catalog's ${entry.runtime.image}: upgrade it first (sf upgrade-service ${instance.value.name}), then rotate its passwords`,
      );
    }
    if (running !== undefined) return { operation: running, started: false };
    if (instance.value.phase !== 'ready') throw concurrencyError(`instance ${id} is ${instance.value.phase}`);
    const secret = await readSecret(ctx, id);
    if (!secret) throw new OsbError(500, 'InternalError', `instance ${id} has no secret`, BrokerErrorCodes.internal);
    const resumed = secret.value.previous !== undefined;
    const next: InstanceSecret = resumed
      ? secret.value
      : {
          ...secret.value,
          adminPassword: randomPassword(),
          ...(secret.value.replicationPassword === undefined ? {} : { replicationPassword: randomPassword() }),
          generation: secretGeneration(secret.value) + 1,
          previous: {
            adminPassword: secret.value.adminPassword,
            ...(secret.value.replicationPassword === undefined
              ? {}
              : { replicationPassword: secret.value.replicationPassword }),
          },
        };
    const generation = secretGeneration(next);
    const description = `${resumed ? 'resuming the rotation' : 'rotating'} of the admin${next.replicationPassword === undefined ? '' : ' and replication'} passwords (generation ${generation}): every replica takes on the new ones`;
    const operation = operationRecord('update', description, { request: { ...rotationRequest } });
    const instanceKey = ctx.keys.instance(id);
    const secretKey = ctx.keys.secret(id);
    const writes = [ctx.client.put(instanceKey).value(json({ ...instance.value, operation }))];
    if (!resumed) writes.push(ctx.client.put(secretKey).value(sealedValue(ctx.secrets, secretKey, next)));
    const res = await ctx.client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .and(secretKey, 'Mod', '==', secret.modRevision)
      .then(...writes)
      .commit();
    if (!res.succeeded) continue;
    await ctx.events.record('credentials-rotation', `${description} (requested by ${by})`, { instanceId: id });
    return { operation: operation.id, started: true };
  }
  throw concurrencyError(`instance ${id} is changing too often; retry the request`);
}

/**
 * One step of the table above for the instance, if a rotation runs. Safe to run from any
 * number of brokers at once: every write compares what it was decided on.
 */
export async function advanceRotation(ctx: BrokerContext, id: string): Promise<void> {
  const instance = await ctx.instances.get(id);
  if (!instance || !isRotation(instance.value)) return;
  const [secret, statuses] = await Promise.all([readSecret(ctx, id), readStatuses(ctx, id)]);
  if (!secret) return;
  const generation = secretGeneration(secret.value);
  const instanceKey = ctx.keys.instance(id);
  const secretKey = ctx.keys.secret(id);
  const finish = async (state: 'succeeded' | 'failed', description: string, kind: string) => {
    const operation = {
      ...instance.value.operation,
      state,
      description,
      ...(state === 'failed' ? { instanceUsable: true, updateRepeatable: true } : {}),
    };
    const res = await ctx.client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .then(ctx.client.put(instanceKey).value(json({ ...instance.value, operation })))
      .commit();
    if (res.succeeded) await ctx.events.record(kind, description, { instanceId: id });
  };

  if (secret.value.previous && allReport(ctx, instance.value, statuses, generation, 'accept-previous')) {
    const { previous: _retired, ...rest } = secret.value;
    const description = `every replica has the new passwords (generation ${generation}); the replaced ones are being retired`;
    const operation = { ...instance.value.operation, description };
    const res = await ctx.client
      .if(instanceKey, 'Mod', '==', instance.modRevision)
      .and(secretKey, 'Mod', '==', secret.modRevision)
      .then(
        ctx.client.put(secretKey).value(sealedValue(ctx.secrets, secretKey, rest)),
        ctx.client.put(instanceKey).value(json({ ...instance.value, operation })),
      )
      .commit();
    if (res.succeeded) await ctx.events.record('credentials-rotation-progress', description, { instanceId: id });
    return;
  }
  if (!secret.value.previous && allReport(ctx, instance.value, statuses, generation, 'new-only')) {
    const description = `the admin${secret.value.replicationPassword === undefined ? '' : ' and replication'} passwords were replaced (generation ${generation}); the previous ones are refused`;
    return finish('succeeded', description, 'credentials-rotation-complete');
  }
  if (Date.now() - Date.parse(instance.value.operation.startedAt) > rotationDeadlineMs) {
    const phase = secret.value.previous ? 'accept-previous' : 'new-only';
    const description = `the rotation to generation ${generation} did not finish within ${rotationDeadlineMs / 60_000} min: waiting for ${waitingFor(statuses, generation, phase)}. ${secret.value.previous ? 'The previous passwords are still accepted where the service can hold two. ' : ''}Run sf rotate-credentials again to resume it`;
    return finish('failed', description, 'credentials-rotation-failed');
  }
}

/** Advances every running rotation every `intervalMs`, in each broker. */
export class RotationDriver {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: BrokerContext,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    const tick = () => {
      this.#running = this.#pass().finally(() => {
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.#timer = setTimeout(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async #pass(): Promise<void> {
    try {
      const instances = await this.ctx.instances.list();
      for (const { value } of instances) if (isRotation(value)) await advanceRotation(this.ctx, value.id);
    } catch (error) {
      this.ctx.log.warn({ err: error }, 'password rotation pass failed; trying again');
    }
  }
}
