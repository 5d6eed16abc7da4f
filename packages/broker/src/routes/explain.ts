import type { InstanceExplanation } from '@service-foundry/api';
import {
  backupCodec,
  fenceCheckCodec,
  placementCodec,
  primaryCodec,
  readPrefix,
  readRecord,
  readSealedPrefix,
  statusCodec,
} from '@service-foundry/core';
import { fenceDevicesCodec } from '@service-foundry/fencing';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { explainInstance } from '../explain-analysis.js';
import { requireInstance } from '../instance-lookup.js';
import { OperatorViews } from '../operator-views.js';

/**
 * `GET /sf/v1/instances/:id/explain` (operator and viewer logins, like every GET of the
 * operator API): reads what the analysis needs — the instance, its placements, statuses,
 * primary and backups, every node, and the fence devices and last device checks of every
 * node — and answers explain-analysis.ts's explanation. Reads only.
 */
export function explainRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const views = new OperatorViews(ctx);

  app.get<{ Params: { id: string } }>('/sf/v1/instances/:id/explain', async (request): Promise<InstanceExplanation> => {
    const found = await requireInstance(ctx, request.params.id);
    const instance = found.value;
    const { client, keys, catalog } = ctx;
    const [placements, statuses, primary, backups, nodes, devices, checks] = await Promise.all([
      readPrefix(client, placementCodec, keys.instancePlacements(instance.id)),
      readPrefix(client, statusCodec, keys.instanceStatuses(instance.id)),
      readRecord(client, primaryCodec, keys.primary(instance.id)),
      readPrefix(client, backupCodec, keys.instanceBackups(instance.id)),
      views.nodes(),
      // Sealed: device options may hold passwords. Only the counts are used.
      readSealedPrefix(client, ctx.secrets, fenceDevicesCodec, keys.allFenceDevices(), ctx.log),
      readPrefix(client, fenceCheckCodec, keys.fenceChecks()),
    ]);
    const plan = catalog.byServiceName(instance.serviceName)?.plans[instance.planName];
    return explainInstance({
      now: Date.now(),
      instance,
      replicated: catalog.replicationMode(instance.serviceName, instance.planName) === 'native',
      acknowledgedOnStandby: catalog.byServiceName(instance.serviceName)?.replication?.acknowledgedOnStandby ?? [],
      shipping: plan?.volumeShipping ?? null,
      requiredNodeLabels: plan?.constraints?.nodeLabels ?? {},
      primary: primary
        ? { ordinal: primary.value.ordinal, node: primary.value.node, epoch: Number(primary.modRevision) }
        : null,
      placements: [...placements.items.values()].map((p) => p.value),
      statuses: [...statuses.items.values()].map((s) => s.value),
      nodes,
      fenceDevices: new Map(
        devices.map(({ value }) => [
          value.node,
          { levels: value.levels.length, devices: value.levels.reduce((n, l) => n + l.devices.length, 0) },
        ]),
      ),
      fenceChecks: new Map([...checks.items.values()].map(({ value }) => [value.node, value])),
      backups: [...backups.items.values()].map((b) => b.value),
    });
  });
}
