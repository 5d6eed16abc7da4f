import { randomUUID } from 'node:crypto';
import type { InstanceDetail, InstanceSummary } from '@service-foundry/api';
import type { OsbService } from '@service-foundry/core';
import { BrokerClient } from '../broker-client.js';
import { type Command, intOption, parametersOption } from '../command.js';
import { BrokerError, UsageError } from '../errors.js';
import { formatBytes, formatSeconds } from '../format.js';
import { instancePath } from '../instance-path.js';
import { waitForOperation } from '../operation-wait.js';
import { printJson, printTable, say } from '../output.js';
import { loadTarget } from '../target.js';

export async function client(): Promise<BrokerClient> {
  return new BrokerClient(await loadTarget());
}

/** The instance an operator names (id or name), as the broker resolves it (see instancePath). */
export async function findInstance(broker: BrokerClient, name: string): Promise<InstanceSummary> {
  try {
    return await broker.get<InstanceSummary>(instancePath(name));
  } catch (error) {
    if (error instanceof BrokerError && error.status === 404) {
      throw new UsageError(`service instance ${JSON.stringify(name)} not found (see \`sf services\`)`);
    }
    throw error;
  }
}

export const marketplace: Command = {
  name: 'marketplace',
  summary: 'list the services and plans you can create',
  args: [],
  options: { json: { type: 'boolean' } },
  async run(_args, options) {
    const { services } = await (await client()).get<{ services: OsbService[] }>('/v2/catalog');
    if (options.json) return printJson(services);
    printTable(
      ['service', 'plans', 'description'],
      services.map((s) => [s.name, s.plans.map((p) => p.name).join(', '), s.description]),
    );
  },
};

export const createService: Command = {
  name: 'create-service',
  summary: 'create a service instance and wait until it is ready',
  args: ['SERVICE', 'PLAN', 'NAME'],
  options: { c: { type: 'string' }, 'no-wait': { type: 'boolean' }, timeout: { type: 'string' } },
  async run([service, plan, nameArg], options) {
    const name = nameArg ?? '';
    const parameters = parametersOption(options);
    const broker = await client();
    const { services } = await broker.get<{ services: OsbService[] }>('/v2/catalog');
    const offering = services.find((s) => s.name === service);
    if (!offering) throw new UsageError(`no service ${JSON.stringify(service)} (see \`sf marketplace\`)`);
    const planEntry = offering.plans.find((p) => p.name === plan);
    if (!planEntry) {
      throw new UsageError(
        `service ${service} has no plan ${JSON.stringify(plan)}; plans: ${offering.plans.map((p) => p.name).join(', ')}`,
      );
    }
    const id = randomUUID();
    await broker.request('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      service_id: offering.id,
      plan_id: planEntry.id,
      context: { platform: 'service-foundry', instance_name: name },
      parameters,
    });
    say(`Creating service instance ${name} (${service} ${plan}, id ${id})`);
    if (options['no-wait']) return say(`Check progress with \`sf service ${name}\``);
    const timeoutSeconds = intOption(options, 'timeout', 300, 1, 3600);
    const state = await waitForOperation(broker, id, `create ${name}`, timeoutSeconds * 1000);
    if (state !== 'succeeded') {
      process.exitCode = 1;
      const detail = await broker.get<InstanceSummary>(instancePath(id)).catch(() => undefined);
      say(`Create failed: ${detail?.operation.description ?? state}`);
      return;
    }
    say(`OK. Next: \`sf create-service-key ${name} KEY\` for credentials.`);
  },
};

export const services: Command = {
  name: 'services',
  summary: 'list service instances',
  args: [],
  options: { json: { type: 'boolean' } },
  async run(_args, options) {
    const all = await (await client()).get<InstanceSummary[]>('/sf/v1/instances');
    if (options.json) return printJson(all);
    printTable(
      ['name', 'space', 'service', 'plan', 'state', 'replicas', 'route', 'last operation'],
      all.map((i) => [
        i.name,
        // A platform's organization/space; `-` for instances `sf` created (the operators' scope).
        i.scope ? `${i.scope.organization}/${i.scope.space}` : '-',
        i.service,
        i.plan,
        i.phase,
        `${i.replicas.running}/${i.replicas.desired}`,
        i.route ? `${i.route.host}:${i.route.port}` : '-',
        `${i.operation.type} ${i.operation.state}`,
      ]),
    );
  },
};

export const service: Command = {
  name: 'service',
  summary: 'show one service instance: state, replicas, route, keys',
  args: ['NAME'],
  options: { json: { type: 'boolean' } },
  async run([name], options) {
    const broker = await client();
    const summary = await findInstance(broker, name ?? '');
    const detail = await broker.get<InstanceDetail>(`/sf/v1/instances/${summary.id}`);
    if (options.json) return printJson(detail);
    say(`name:            ${detail.name}`);
    say(`id:              ${detail.id}`);
    say(`service / plan:  ${detail.service} / ${detail.plan}`);
    const m = detail.maintenance;
    say(`version:         ${m.running ?? '(unrecorded)'}${m.upgradeAvailable ? '' : ' (current)'}`);
    say(`image:           ${m.runningImage ?? '(unrecorded)'}`);
    if (m.upgradeAvailable) {
      const to = [m.offered ? `maintenance version ${m.offered}` : '', m.offeredImage ? `image ${m.offeredImage}` : '']
        .filter(Boolean)
        .join(', ');
      say(`upgrade available: to ${to} — ${m.reason} (\`sf upgrade-service ${detail.name}\`)`);
    }
    say(`state:           ${detail.phase}${detail.message ? ` — ${detail.message}` : ''}`);
    say(`last operation:  ${detail.operation.type} ${detail.operation.state}: ${detail.operation.description}`);
    say(
      `route:           ${detail.route ? detail.route.hosts.map((h) => `${h}:${detail.route?.port}`).join(', ') : '-'}`,
    );
    say(`primary:         ${detail.primary ? `${detail.primary.node} (epoch ${detail.primary.epoch})` : '-'}`);
    say(
      `replicas:        ${detail.replicas.running} running, ${detail.replicas.placed} placed, ${detail.replicas.desired} desired`,
    );
    if (detail.io) say(`durability:      ${detail.io.durability}, local IO ${detail.io.localIo}`);
    if (detail.failover) {
      say(`fencing:         ${detail.failover.fencing} (timeout ${detail.failover.fencingTimeoutSeconds} s)`);
    }
    if (detail.shipping) {
      // The RPO a user relies on: how old the copy a failover would promote is right now.
      const ages = detail.shipping.standbys.map((s) =>
        s.copiedAt ? `${s.node} ${formatSeconds(Date.now() - Date.parse(s.copiedAt), 1)} ago` : `${s.node} not yet`,
      );
      say(
        `standbys:        volume shipping every ${detail.shipping.intervalSeconds} s (RPO ${detail.shipping.intervalSeconds} s); ` +
          `last complete copy: ${ages.length ? ages.join(', ') : 'none yet'}`,
      );
    }
    // Why replicas are pending, as the scheduler last explained it.
    if (detail.scheduling) {
      say(`placement:       ${detail.scheduling.placed} of ${detail.scheduling.desired} replicas placed`);
      for (const p of detail.scheduling.pending) say(`  replica ${p.ordinal}:     ${p.reason}`);
    }
    const replicas = detail.replicaDetails;
    if (replicas.length) {
      printTable(
        ['replica', 'node', 'role', 'state', 'address', 'position', 'message'],
        replicas.map((r) => [
          r.ordinal,
          r.node ?? '-',
          r.role ?? '-',
          r.state,
          r.host ? `${r.host}:${r.port}` : '-',
          r.position ?? '-',
          r.message,
        ]),
      );
    }
    const keys = detail.bindings;
    say(`keys:            ${keys.length ? keys.map((k) => k.name).join(', ') : '-'}`);
    const { relocation: r, backup: b, restore: from } = detail;
    if (from) say(`restored from:   backup ${from.backupId} of instance ${from.instanceId} (${from.state})`);
    if (r) {
      // A finished relocation's message already carries its figures and downtime.
      say(`last relocation: replica ${r.ordinal} ${r.from} → ${r.to ?? '?'}: ${r.phase} — ${r.message}`);
    }
    if (b) {
      const size = b.figures ? `, ${formatBytes(b.figures.bytes)}` : '';
      say(`last backup:     ${b.id} ${b.state}, taken ${b.completedAt ?? b.startedAt ?? b.requestedAt}${size}`);
    }
  },
};

export const deleteService: Command = {
  name: 'delete-service',
  summary: 'delete a service instance, its data and its keys',
  args: ['NAME'],
  options: { 'no-wait': { type: 'boolean' } },
  async run([name], options) {
    const broker = await client();
    const instance = await findInstance(broker, name ?? '');
    const { services } = await broker.get<{ services: OsbService[] }>('/v2/catalog');
    const offering = services.find((s) => s.name === instance.service);
    const plan = offering?.plans.find((p) => p.name === instance.plan);
    const query = new URLSearchParams({
      service_id: offering?.id ?? '',
      plan_id: plan?.id ?? '',
      accepts_incomplete: 'true',
    });
    await broker.request('DELETE', `/v2/service_instances/${instance.id}?${query}`);
    say(`Deleting service instance ${name}`);
    if (options['no-wait']) return;
    const state = await waitForOperation(broker, instance.id, `delete ${name}`, 300_000);
    if (state !== 'succeeded' && state !== 'gone') process.exitCode = 1;
  },
};

export const updateService: Command = {
  name: 'update-service',
  summary:
    'change an instance\'s plan (-p ha-small: adds or removes replicas) or settings live (-c \'{"durability":"async","local_io":"batched"}\')',
  args: ['NAME'],
  options: { p: { type: 'string' }, c: { type: 'string' }, 'no-wait': { type: 'boolean' } },
  async run([name], options) {
    const planName = options.p;
    if (typeof options.c !== 'string' && typeof planName !== 'string') {
      throw new UsageError('-p PLAN or -c JSON is required: the plan to move to, or the parameters to change');
    }
    const parameters = typeof options.c === 'string' ? parametersOption(options) : undefined;
    const broker = await client();
    const instance = await findInstance(broker, name ?? '');
    const { services } = await broker.get<{ services: OsbService[] }>('/v2/catalog');
    const offering = services.find((s) => s.name === instance.service);
    let planId: string | undefined;
    if (typeof planName === 'string') {
      planId = offering?.plans.find((p) => p.name === planName)?.id;
      if (!planId) {
        throw new UsageError(
          `service ${instance.service} has no plan ${JSON.stringify(planName)}; plans: ${offering?.plans.map((p) => p.name).join(', ')}`,
        );
      }
    }
    const res = await broker.request('PATCH', `/v2/service_instances/${instance.id}?accepts_incomplete=true`, {
      service_id: offering?.id ?? '',
      ...(planId && planName !== instance.plan ? { plan_id: planId } : {}),
      ...(parameters ? { parameters } : {}),
    });
    if (res.status === 200) return say(`Nothing to change on ${name}.`);
    const what = [
      ...(planId && planName !== instance.plan ? [`plan ${instance.plan} → ${planName}`] : []),
      ...Object.keys(parameters ?? {}),
    ];
    say(`Updating ${name}: ${what.join(', ')}`);
    if (options['no-wait']) return;
    // A plan change clones whole replicas: as long as a provision may take.
    const timeoutMs = planId ? 600_000 : 120_000;
    const state = await waitForOperation(broker, instance.id, `update ${name}`, timeoutMs);
    if (state !== 'succeeded') process.exitCode = 1;
  },
};
