import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { InstanceDetail, NodeView } from '@service-foundry/api';
import { type EventRecord, eventCodec } from '@service-foundry/core';
import { type FenceHistoryEntry, Fencing } from '@service-foundry/fencing';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { OperatorViews } from '../operator-views.js';

/** The page's files, shipped as they are (no build step, nothing from a CDN). */
const assets = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
} as const;
const assetDir = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/** How often the state is recomputed for open pages; sent only when it changed. */
const stateIntervalMs = 1000;
const historyShown = 20;

export interface DashboardState {
  nodes: NodeView[];
  instances: InstanceDetail[];
  fencing: FenceHistoryEntry[];
}

/**
 * The dashboard (docs/dashboard.md): `GET /sf/v1/dashboard` and its two files, and
 * `GET /sf/v1/dashboard/stream`, server-sent events — `state` (nodes, instances with their
 * replicas, fencing history) whenever it changes, `event` for every new operator event as
 * etcd writes it. Under the operator API's logins: viewers see it, only operators' actions
 * (the existing `POST /sf/v1/…` routes the page calls) are accepted.
 */
export function dashboardRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const views = new OperatorViews(ctx);
  const fencing = new Fencing(ctx.client, ctx.keys, {}, { log: ctx.log, secrets: ctx.secrets });

  const serve = (name: keyof typeof assets) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
    const body = await readFile(`${assetDir}${name}`, 'utf8');
    return reply.header('content-type', assets[name]).header('cache-control', 'no-store').send(body);
  };
  app.get('/sf/v1/dashboard', serve('index.html'));
  app.get('/sf/v1/dashboard/app.js', serve('app.js'));
  app.get('/sf/v1/dashboard/style.css', serve('style.css'));

  const state = async (): Promise<DashboardState> => {
    const [nodes, summaries, history] = await Promise.all([
      views.nodes(),
      views.instances(),
      fencing.store.history(historyShown),
    ]);
    const details = await Promise.all(summaries.map((s) => views.instance(s.id)));
    return { nodes, instances: details.filter((d): d is InstanceDetail => d !== undefined), fencing: history };
  };

  app.get('/sf/v1/dashboard/stream', async (request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const send = (event: string, data: unknown) => raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    let closed = false;
    let last = '';
    let timer: NodeJS.Timeout | undefined;
    const push = async () => {
      try {
        const next = JSON.stringify(await state());
        if (!closed && next !== last) {
          last = next;
          raw.write(`event: state\ndata: ${next}\n\n`);
        }
      } catch (error) {
        if (!closed) send('problem', { message: (error as Error).message });
      }
      if (!closed) timer = setTimeout(push, stateIntervalMs);
    };
    // New events as etcd writes them; the page asks for the recent ones itself (GET /sf/v1/events).
    const watcher = await ctx.client.watch().prefix(ctx.keys.events()).create();
    watcher.on('put', (kv) => {
      try {
        const record: EventRecord = eventCodec.parse(kv.key.toString(), JSON.parse(kv.value.toString()));
        send('event', record);
      } catch {
        // A malformed event is skipped here as everywhere else.
      }
    });
    raw.on('close', () => {
      closed = true;
      clearTimeout(timer);
      void watcher.cancel();
    });
    request.log.debug('dashboard stream opened');
    await push();
  });
}
