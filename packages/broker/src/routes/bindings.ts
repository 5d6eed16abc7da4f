import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import {
  type BindingRecord,
  type InstanceRecord,
  planClientTls,
  type ServiceBindingRecipe,
  TimeoutError,
  waitFor,
} from '@service-foundry/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type BindingDriver, type BindingTarget, PostgresBindingDriver } from '../binding-driver-postgres.js';
import { RedisBindingDriver } from '../binding-driver-redis.js';
import { runningReplicas } from '../binding-replicas.js';
import { predecessorOf, rotationBasis } from '../binding-rotation.js';
import type { BrokerContext } from '../broker-context.js';
import { routerAddresses } from '../config.js';
import { BrokerErrorCodes } from '../errors.js';
import { badRequest, concurrencyError, conflict, notFound, OsbError } from '../osb-errors.js';
import { validateParameters } from '../params-validation.js';
import { randomPassword, randomUsername } from '../random.js';
import { contextName, idParams, keySegmentParam, stringField } from '../request-checks.js';

interface BindBody {
  /** Required, except in a rotation (OSB 2.17), whose body may name only the predecessor. */
  service_id?: string;
  plan_id?: string;
  predecessor_binding_id?: string;
  context?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
}

const bindBody = {
  type: 'object',
  properties: {
    service_id: stringField,
    plan_id: stringField,
    predecessor_binding_id: stringField,
    context: { type: 'object' },
    parameters: { type: 'object' },
    bind_resource: { type: 'object' },
    app_guid: stringField,
  },
};

const bindingParams = idParams('instance_id', 'binding_id');

const bindingDrivers: Record<ServiceBindingRecipe['driver'], BindingDriver> = {
  postgres: new PostgresBindingDriver(),
  redis: new RedisBindingDriver(),
};

/** JDBC sub-protocol per driver, for Java clients (Redis has no JDBC URL). */
const jdbcNames: Partial<Record<ServiceBindingRecipe['driver'], string>> = { postgres: 'postgresql' };

/**
 * How a binding asks its client to verify the server, per driver: libpq's (and pgJDBC's)
 * `sslmode=verify-full` — TLS, a certificate chaining to the CA given, naming the host —
 * and Redis's `rediss://` scheme (TLS; clients check the name as they do for any TLS).
 */
const tlsUri: Record<ServiceBindingRecipe['driver'], { scheme?: string; query?: string; jdbcQuery?: string }> = {
  postgres: { query: 'sslmode=verify-full', jdbcQuery: 'ssl=true&sslmode=verify-full' },
  redis: { scheme: 'rediss' },
};

/**
 * The cluster CA the services' certificates chain to (broker config `serviceCaFile`),
 * read on first use and kept: it lives as long as the cluster.
 */
let serviceCa: { file: string; pem: Promise<string> } | undefined;
function serviceCaPem(ctx: BrokerContext): Promise<string> | undefined {
  const file = ctx.config.serviceCaFile;
  if (file === undefined) return undefined;
  if (serviceCa?.file !== file) {
    const pem = readFile(file, 'utf8').then((text) => {
      if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${file} holds no PEM certificate`);
      return text;
    });
    // A failed read is tried again on the next request instead of being kept.
    pem.catch(() => {
      if (serviceCa?.pem === pem) serviceCa = undefined;
    });
    serviceCa = { file, pem };
  }
  return serviceCa.pem;
}

/** The CA PEM when the instance's plan speaks TLS and the broker knows the CA; else undefined (plaintext). */
async function tlsCaFor(ctx: BrokerContext, instance: InstanceRecord): Promise<string | undefined> {
  const { entry, plan } = ctx.plans.resolve(instance.serviceId, instance.planId);
  if (planClientTls(entry, plan.name) === 'none') return undefined;
  const pem = serviceCaPem(ctx);
  if (!pem) return undefined;
  try {
    return await pem;
  } catch (error) {
    throw new OsbError(
      500,
      'InternalError',
      `cannot read the cluster CA (serviceCaFile): ${(error as Error).message}`,
      BrokerErrorCodes.internal,
      { cause: error },
    );
  }
}

/** `host:port`, with brackets around an IPv6 address. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * A binding's credentials naming every router (docs/broker.md "Credentials"): `host`/`port`
 * are the first, `hosts` all of them; the Postgres URI and JDBC URL list them all and ask
 * for the read-write server (libpq `target_session_attrs`, pgJDBC `targetServerType`), so a
 * client whose router is gone connects through the next one.
 */
function credentialsOf(
  ctx: BrokerContext,
  instance: InstanceRecord,
  recipe: ServiceBindingRecipe,
  binding: BindingRecord,
  ca: string | undefined,
) {
  const routers = routerAddresses(ctx.config);
  const host = routers[0] as string;
  const port = instance.routerPort;
  const { username, password } = binding;
  const database = recipe.database;
  const jdbcName = jdbcNames[recipe.driver];
  const tls = ca === undefined ? undefined : tlsUri[recipe.driver];
  const scheme = tls?.scheme ?? recipe.uriScheme;
  const several = routers.length > 1;
  // Only libpq reads a host list in a URI; a Redis URI names the first router.
  const uriHosts =
    recipe.driver === 'postgres' ? routers.map((h) => hostPort(h, port)).join(',') : hostPort(host, port);
  const query = [
    ...(several && recipe.driver === 'postgres' ? ['target_session_attrs=read-write'] : []),
    ...(tls?.query ? [tls.query] : []),
  ];
  const path = database === undefined ? '' : `/${database}`;
  const uri = `${scheme}://${username}:${password}@${uriHosts}${path}${query.length ? `?${query.join('&')}` : ''}`;
  const jdbcQuery = [
    `user=${username}`,
    `password=${password}`,
    ...(several ? ['targetServerType=primary'] : []),
    ...(tls?.jdbcQuery ? [tls.jdbcQuery] : []),
  ].join('&');
  const jdbcHosts = routers.map((h) => hostPort(h, port)).join(',');
  return {
    credentials: {
      host,
      port,
      hosts: routers.map((h) => ({ host: h, port })),
      ...(database === undefined ? {} : { database }),
      username,
      password,
      uri,
      ...(jdbcName === undefined || database === undefined
        ? {}
        : { jdbcUrl: `jdbc:${jdbcName}://${jdbcHosts}/${database}?${jdbcQuery}` }),
      // What an app needs to verify the server end to end: TLS is on, and this CA (PEM)
      // is the only issuer to trust for it.
      ...(ca === undefined ? {} : { tls: true, ca_certificate: ca }),
    },
    endpoints: routers.map((h) => ({ host: h, ports: [String(port)], protocol: 'tcp' })),
  };
}

function bindingFailed(action: string, instanceId: string, error: unknown): OsbError {
  const reason = error instanceof Error ? error.message : String(error);
  return new OsbError(
    500,
    'BindingFailed',
    `could not ${action} in instance ${instanceId} (through the router): ${reason}`,
    BrokerErrorCodes.binding,
    { cause: error },
  );
}

/** How long a refused connection through the router is tried again (see throughFreshRoute). */
const freshRouteGraceMs = 5000;

/**
 * An instance turns ready when its route is written; a router opens that port a moment
 * later, when its watch delivers the route, and a router may be down (restarting). A
 * refused connection ran nothing, so it is tried again on the next router, every 100 ms
 * until the grace runs out (then that refusal is the answer); any other error is final.
 */
async function throughFreshRoute<T>(routers: readonly string[], work: (router: string) => Promise<T>): Promise<T> {
  let attempt = 0;
  let refusal: unknown;
  const refused = (error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'ECONNREFUSED') return false;
    refusal = error;
    return true;
  };
  try {
    // Boxed: work's own result may be undefined, which waitFor reads as "not yet".
    const done = await waitFor(async () => ({ result: await work(routers[attempt++ % routers.length] as string) }), {
      description: 'the router to open the route',
      timeoutMs: freshRouteGraceMs,
      intervalMs: 100,
      retryOn: refused,
    });
    return done.result;
  } catch (error) {
    throw refusal !== undefined && error instanceof TimeoutError && error.cause === refusal ? refusal : error;
  }
}

export function bindingRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const recipeOf = (instance: InstanceRecord) => ctx.plans.resolve(instance.serviceId, instance.planId).entry.binding;

  async function adminTarget(
    instance: InstanceRecord,
    recipe: ServiceBindingRecipe,
    ca: string | undefined,
  ): Promise<BindingTarget> {
    const secret = await ctx.instances.secret(instance.id);
    if (!secret)
      throw new OsbError(
        500,
        'InternalError',
        `instance ${instance.id} has no admin secret`,
        BrokerErrorCodes.internal,
      );
    return {
      host: routerAddresses(ctx.config)[0] as string,
      port: instance.routerPort,
      database: recipe.database ?? '',
      adminUser: secret.adminUser,
      adminPassword: secret.adminPassword,
      ...(secret.previous ? { previousAdminPassword: secret.previous.adminPassword } : {}),
      timeoutMs: ctx.config.bindTimeoutMs,
      ...(ca === undefined ? {} : { tls: { ca } }),
      replicas: bindingDrivers[recipe.driver].usersOnReplicas ? await runningReplicas(ctx, instance.id) : [],
    };
  }

  /** A driver's warnings about replicas (binding-driver-postgres.ts BindingDriver), in the log. */
  function warnAboutReplicas(request: FastifyRequest, instanceId: string, problems: readonly string[]): void {
    for (const problem of problems) request.log.warn({ instanceId }, `binding user on a replica: ${problem}`);
  }

  /** An existing binding answers a repeated PUT: the same request gets the same credentials. */
  function repeatAnswer(
    existing: BindingRecord,
    parameters: Record<string, unknown>,
    context: Record<string, unknown>,
  ) {
    if (!isDeepStrictEqual(existing.parameters, parameters) || !isDeepStrictEqual(existing.context, context)) {
      throw conflict(`binding ${existing.id} already exists with different parameters or context`);
    }
  }

  app.put<{ Params: { instance_id: string; binding_id: string }; Body: BindBody }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    { schema: { params: bindingParams, body: bindBody } },
    async (request, reply) => {
      const instanceId = keySegmentParam(request.params.instance_id, 'instance id');
      const bindingId = keySegmentParam(request.params.binding_id, 'binding id');
      const body = request.body;
      const instance = (await ctx.instances.get(instanceId))?.value;
      if (!instance) throw notFound(`instance ${instanceId} does not exist`);
      const predecessorId = predecessorOf(request, body);
      if (predecessorId === undefined && (body.service_id === undefined || body.plan_id === undefined)) {
        throw badRequest('service_id and plan_id are required');
      }
      if (
        (body.service_id !== undefined && body.service_id !== instance.serviceId) ||
        (body.plan_id !== undefined && body.plan_id !== instance.planId)
      ) {
        throw badRequest(`service_id and plan_id must be those of instance ${instanceId}`);
      }
      const plan = ctx.plans.resolve(instance.serviceId, instance.planId);
      if (!(plan.plan.bindable ?? plan.entry.osb.bindable)) {
        throw badRequest(`plan ${plan.entry.osb.name}/${plan.plan.name} is not bindable`);
      }
      const existing = await ctx.bindings.get(instanceId, bindingId);
      if (existing && existing.value.predecessorId !== predecessorId) {
        throw conflict(`binding ${bindingId} already exists with a different predecessor_binding_id`);
      }
      // A rotation takes the predecessor's parameters and context unless the request gives
      // its own: the platform may not have kept them (OSB "Binding Rotation"). A repeated
      // rotation is answered from the binding it made, whose predecessor may be gone by now.
      const basis =
        predecessorId === undefined
          ? undefined
          : (existing ?? (await rotationBasis(ctx.bindings, plan, instanceId, bindingId, predecessorId))).value;
      const parameters = body.parameters ?? basis?.parameters ?? {};
      validateParameters(plan, 'binding create', parameters);
      const context = body.context ?? basis?.context ?? {};
      const name = contextName(context, 'binding_name', bindingId);
      const recipe = plan.entry.binding;

      const ca = await tlsCaFor(ctx, instance);
      if (existing) {
        repeatAnswer(existing.value, parameters, context);
        return reply.code(200).send(credentialsOf(ctx, instance, recipe, existing.value, ca));
      }
      if (instance.phase !== 'ready') {
        throw concurrencyError(
          `instance ${instanceId} is ${instance.phase}, not ready; bind once provisioning succeeded`,
        );
      }

      const record: BindingRecord = {
        id: bindingId,
        instanceId,
        name,
        username: randomUsername(),
        password: randomPassword(),
        createdAt: new Date().toISOString(),
        context,
        parameters,
        ...(predecessorId === undefined ? {} : { predecessorId }),
      };
      const driver = bindingDrivers[recipe.driver];
      const target = await adminTarget(instance, recipe, ca);
      try {
        const problems = await throughFreshRoute(routerAddresses(ctx.config), (host) =>
          driver.createUser({ ...target, host }, recipe, record.username, record.password),
        );
        warnAboutReplicas(request, instanceId, problems);
      } catch (error) {
        request.log.error(
          { instanceId, bindingId, reason: (error as Error).message },
          'creating the binding user failed',
        );
        throw bindingFailed('create the database user', instanceId, error);
      }
      if (!(await ctx.bindings.create(record))) {
        // Lost to a concurrent bind of the same id, or the instance went away: undo our user.
        await driver.dropUser(target, recipe, record.username).catch((error: unknown) => {
          request.log.warn(
            { instanceId, username: record.username, reason: (error as Error).message },
            'dropping an unused binding user failed',
          );
        });
        const winner = await ctx.bindings.get(instanceId, bindingId);
        if (!winner) throw concurrencyError(`instance ${instanceId} changed while binding; retry`);
        repeatAnswer(winner.value, parameters, context);
        return reply.code(200).send(credentialsOf(ctx, instance, recipe, winner.value, ca));
      }
      request.log.info({ instanceId, bindingId, username: record.username }, 'binding created');
      await ctx.events.record('binding-created', `binding "${name}" (user ${record.username}) created`, { instanceId });
      return reply.code(201).send(credentialsOf(ctx, instance, recipe, record, ca));
    },
  );

  app.get<{ Params: { instance_id: string; binding_id: string } }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    { schema: { params: bindingParams } },
    async (request) => {
      const instanceId = keySegmentParam(request.params.instance_id, 'instance id');
      const bindingId = keySegmentParam(request.params.binding_id, 'binding id');
      const instance = (await ctx.instances.get(instanceId))?.value;
      const binding = instance ? (await ctx.bindings.get(instanceId, bindingId))?.value : undefined;
      if (!instance || !binding) throw notFound(`binding ${bindingId} of instance ${instanceId} does not exist`);
      const ca = await tlsCaFor(ctx, instance);
      return { ...credentialsOf(ctx, instance, recipeOf(instance), binding, ca), parameters: binding.parameters };
    },
  );

  app.delete<{
    Params: { instance_id: string; binding_id: string };
    Querystring: { service_id: string; plan_id: string };
  }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    {
      schema: {
        params: bindingParams,
        querystring: {
          type: 'object',
          required: ['service_id', 'plan_id'],
          properties: { service_id: stringField, plan_id: stringField, accepts_incomplete: stringField },
        },
      },
    },
    async (request, reply) => {
      const instanceId = keySegmentParam(request.params.instance_id, 'instance id');
      const bindingId = keySegmentParam(request.params.binding_id, 'binding id');
      const instance = (await ctx.instances.get(instanceId))?.value;
      if (!instance) return reply.code(410).send({});
      if (request.query.service_id !== instance.serviceId || request.query.plan_id !== instance.planId) {
        throw badRequest(`service_id and plan_id must be those of instance ${instanceId}`);
      }
      const binding = await ctx.bindings.get(instanceId, bindingId);
      if (!binding) return reply.code(410).send({});
      // Only a ready instance has a reachable database; otherwise the user dies with it.
      if (instance.phase === 'ready') {
        const recipe = recipeOf(instance);
        try {
          const target = await adminTarget(instance, recipe, await tlsCaFor(ctx, instance));
          const problems = await throughFreshRoute(routerAddresses(ctx.config), (host) =>
            bindingDrivers[recipe.driver].dropUser({ ...target, host }, recipe, binding.value.username),
          );
          warnAboutReplicas(request, instanceId, problems);
        } catch (error) {
          request.log.error(
            { instanceId, bindingId, reason: (error as Error).message },
            'dropping the binding user failed',
          );
          throw bindingFailed('drop the database user', instanceId, error);
        }
      }
      await ctx.bindings.delete(binding);
      request.log.info({ instanceId, bindingId, username: binding.value.username }, 'binding deleted');
      await ctx.events.record('binding-deleted', `binding "${binding.value.name}" deleted`, { instanceId });
      return reply.code(200).send({});
    },
  );
}
