import type { AddressInfo } from 'node:net';
import {
  Catalog,
  connectEtcd,
  createLogger,
  createMetricsRegistry,
  ErrorCodes,
  EventLog,
  Keyspace,
  type Logger,
  maybeStartMetricsServer,
  SecretBox,
} from '@service-foundry/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import type { Registry } from 'prom-client';
import { apiAreaOf } from './api-areas.js';
import { authHook, Logins } from './auth.js';
import { trimBindingFields } from './binding-response-fields.js';
import { BindingStore } from './binding-store.js';
import type { BrokerContext } from './broker-context.js';
import { loadBrokerConfig } from './config.js';
import { RotationDriver } from './credential-rotation.js';
import { clientErrorHandler, frameworkErrors, installErrorAnswers } from './http-errors.js';
import { InstanceStore } from './instance-store.js';
import { requestLimits } from './limits.js';
import { instrumentRequests, watchOperations } from './metrics.js';
import { OsbError } from './osb-errors.js';
import { originatingPlatform, requestIdentity, requireApiVersion } from './osb-headers.js';
import { PlanRegistry } from './params-validation.js';
import { checkBodyLimits, rejectLongUrls } from './request-limits.js';
import { backupRoutes } from './routes/backups.js';
import { bindingRoutes } from './routes/bindings.js';
import { catalogRoutes } from './routes/catalog.js';
import { credentialRoutes } from './routes/credentials.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { explainRoutes } from './routes/explain.js';
import { fencingRoutes } from './routes/fencing.js';
import { instanceUpdateRoutes } from './routes/instance-update.js';
import { instanceRoutes } from './routes/instances.js';
import { lastOperationRoutes } from './routes/last-operations.js';
import { nodeControlRoutes } from './routes/node-controls.js';
import { operatorRoutes } from './routes/operator.js';
import { relocationRoutes } from './routes/relocations.js';
import { switchoverRoutes } from './routes/switchover.js';
import { upgradeRoutes } from './routes/upgrades.js';

const unsupportedMediaType = () =>
  new OsbError(
    400,
    'UnsupportedMediaType',
    'the request body must be JSON (Content-Type: application/json)',
    ErrorCodes.invalidInput,
  );

/**
 * Bodies are JSON only. An empty body counts as absent (platforms send DELETE with a JSON
 * content type and no body); a body without a content type is tried as JSON, as OSB allows.
 */
function installBodyParsers(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const parse = (request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => {
    if (body.length === 0) done(null, undefined);
    // Fastify's JSON parser is synchronous and reports through `done`.
    else void parseJson(request, body, done);
  };
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parse);
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    if (request.headers['content-type'] === undefined) parse(request, body as string, done);
    else done(unsupportedMediaType(), undefined);
  });
}

/** The Fastify app with every route, hook and error mapping; not yet listening. */
export function buildServer(ctx: BrokerContext, registry?: Registry): FastifyInstance {
  const app = Fastify({
    // Typed as Fastify's own logger interface so the app is a plain FastifyInstance.
    loggerInstance: ctx.log as FastifyBaseLogger,
    // One line per request, written by the onResponse hook below without headers or bodies.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's defaults coerce types, fill defaults and drop unknown fields. Input must be
    // judged as sent: OSB's own unknown-field rule is handled by the schemas themselves.
    ajv: { customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: true } },
    routerOptions: { maxParamLength: requestLimits.paramChars },
    bodyLimit: requestLimits.bodyBytes,
    frameworkErrors,
    clientErrorHandler,
    forceCloseConnections: true,
    // installErrorAnswers answers requests during close itself, with an OSB body.
    return503OnClosing: false,
  });
  installBodyParsers(app);
  installErrorAnswers(app);
  if (registry) instrumentRequests(app, registry);

  app.addHook('onRequest', rejectLongUrls);
  app.addHook('onRequest', authHook(new Logins(ctx.config.osb, ctx.config.operators)));
  app.addHook('onRequest', async (request) => {
    // The matched route decides, not the raw URL: `/%762/catalog` is `/v2/catalog` too.
    if (apiAreaOf(request) === 'osb') await requireApiVersion(request);
  });
  app.addHook('preValidation', checkBodyLimits);
  app.addHook('preSerialization', trimBindingFields);
  app.addHook('onSend', async (request, reply, payload) => {
    const identity = requestIdentity(request);
    if (identity) reply.header('X-Broker-API-Request-Identity', identity);
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url.slice(0, 300),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        platform: originatingPlatform(request),
        requestIdentity: requestIdentity(request),
      },
      'request',
    );
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  catalogRoutes(app, ctx);
  instanceRoutes(app, ctx);
  instanceUpdateRoutes(app, ctx);
  lastOperationRoutes(app, ctx);
  bindingRoutes(app, ctx);
  operatorRoutes(app, ctx);
  explainRoutes(app, ctx);
  dashboardRoutes(app, ctx);
  nodeControlRoutes(app, ctx);
  fencingRoutes(app, ctx);
  relocationRoutes(app, ctx);
  switchoverRoutes(app, ctx);
  upgradeRoutes(app, ctx);
  credentialRoutes(app, ctx);
  backupRoutes(app, ctx);
  return app;
}

export interface RunningBroker {
  /** Base URL, e.g. `http://127.0.0.1:8470`. */
  url: string;
  /** `http://host:port/metrics` when the config asks for metrics. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/** Starts the broker: validates `input` as a BrokerConfig, loads the catalog, listens. */
export async function startBroker(input: unknown, options: { log?: Logger } = {}): Promise<RunningBroker> {
  const config = loadBrokerConfig(input);
  const log = options.log ?? createLogger({ name: 'broker' });
  const catalog = await Catalog.load(config.catalogDir);
  const plans = new PlanRegistry(catalog);
  const keys = new Keyspace(config.keyspaceRoot);
  const secrets = await SecretBox.fromKeyFile(config.secretsKeyFile);
  const client = connectEtcd({
    endpoints: config.etcdEndpoints,
    tls: config.etcdTls,
    keepaliveMs: config.etcdKeepaliveMs,
  });
  const ctx: BrokerContext = {
    config,
    catalog,
    plans,
    keys,
    client,
    instances: new InstanceStore(client, keys, config.routerPortRange, secrets),
    bindings: new BindingStore(client, keys, secrets),
    events: new EventLog(client, keys, 'broker'),
    log,
    secrets,
  };
  const registry = createMetricsRegistry('broker');
  const app = buildServer(ctx, registry);
  const rotations = new RotationDriver(ctx);
  let stopWatching: (() => Promise<void>) | undefined;
  let metrics: Awaited<ReturnType<typeof maybeStartMetricsServer>>;
  try {
    // Fail at startup, not on the first request, when etcd is unreachable.
    await client.getAll().prefix(keys.instances()).count();
    await app.listen({ host: config.host, port: config.port });
    // The operations watch exists for the metrics only.
    if (config.metrics) stopWatching = await watchOperations(client, keys, registry, log);
    metrics = await maybeStartMetricsServer(registry, config.metrics);
    rotations.start();
  } catch (error) {
    await rotations.stop();
    await stopWatching?.();
    await app.close().catch(() => undefined);
    client.close();
    throw error;
  }
  const { port } = app.server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info(
    { url, keyspaceRoot: config.keyspaceRoot, services: catalog.entries.map((e) => e.osb.name) },
    'broker ready',
  );
  return {
    url,
    ...(metrics ? { metricsUrl: metrics.url } : {}),
    stop: async () => {
      await metrics?.stop();
      await rotations.stop();
      await stopWatching?.();
      await app.close();
      client.close();
    },
  };
}
