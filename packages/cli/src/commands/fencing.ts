import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { FenceDevicesView, FenceHistoryView, FenceReply, UnfenceReply } from '@service-foundry/api';
import { BrokerClient } from '../broker-client.js';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { printJson, printTable, say } from '../output.js';
import { loadTarget } from '../target.js';

/** Fencing runs every level of a node's devices: allow far longer than an ordinary call. */
const fencingTimeoutMs = 15 * 60_000;
const operatorName = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

/** Who runs `sf`, for the broker's audit trail: `$SF_OPERATOR`, else the login name. */
function operator(): string | undefined {
  let name = process.env.SF_OPERATOR;
  if (name === undefined) {
    try {
      name = userInfo().username;
    } catch {
      return undefined;
    }
  }
  return operatorName.test(name) ? name : undefined;
}

/** One call to the operator API, with the `X-SF-Operator` header and fencing's long deadline. */
async function operatorCall<T>(method: string, path: string, body?: unknown): Promise<T> {
  const who = operator();
  const broker = new BrokerClient(await loadTarget());
  const headers = who ? { 'x-sf-operator': who } : {};
  return (await broker.request<T>(method, path, body, { headers, timeoutMs: fencingTimeoutMs })).body;
}

function nodePath(node: string, tail: string): string {
  return `/sf/v1/nodes/${encodeURIComponent(node)}/${tail}`;
}

function printDeviceOutcomes(history: FenceHistoryView): void {
  const rows = history.levels.flatMap((l) =>
    l.devices.map((d) => [
      d.level,
      d.device,
      d.steps.map((s) => `${s.action}=${s.exitCode ?? '-'}${s.attempts > 1 ? ` (${s.attempts} tries)` : ''}`).join(' '),
      `${d.durationMs} ms`,
      d.ok ? 'ok' : d.reason,
    ]),
  );
  if (rows.length > 0) printTable(['level', 'device', 'exit codes', 'time', 'result'], rows);
}

export const fence: Command = {
  name: 'fence',
  summary: 'fence (power off) a node through its fence devices, level by level',
  args: ['NODE'],
  options: { reason: { type: 'string' }, json: { type: 'boolean' } },
  async run([node], options) {
    const body = typeof options.reason === 'string' ? { reason: options.reason } : {};
    const reply = await operatorCall<FenceReply>('POST', nodePath(node ?? '', 'fence'), body);
    if (options.json) return printJson(reply);
    printDeviceOutcomes(reply.history);
    if (reply.state === 'fenced') {
      say(
        reply.ranDevices
          ? `${reply.node} fenced at level ${reply.level} (${reply.history.durationMs} ms)`
          : `${reply.node} is fenced: ${reply.history.detail}`,
      );
    } else {
      process.exitCode = 1;
      say(`fencing ${reply.node} FAILED: ${reply.reason}`);
    }
  },
};

export const unfence: Command = {
  name: 'unfence',
  summary: 'unfence a node: power on the devices of the level that fenced it',
  args: ['NODE'],
  options: { reason: { type: 'string' }, 'no-power-on': { type: 'boolean' }, json: { type: 'boolean' } },
  async run([node], options) {
    const body: Record<string, unknown> = typeof options.reason === 'string' ? { reason: options.reason } : {};
    if (options['no-power-on']) body.powerOn = false;
    const reply = await operatorCall<UnfenceReply>('POST', nodePath(node ?? '', 'unfence'), body);
    if (options.json) return printJson(reply);
    printDeviceOutcomes(reply.history);
    if (reply.ok)
      say(`${reply.node} unfenced${reply.ranDevices ? '' : ` (${reply.history.detail || 'no devices run'})`}`);
    else {
      process.exitCode = 1;
      say(`unfencing ${reply.node} FAILED, it stays fenced: ${reply.reason}`);
    }
  },
};

export const fenceDevices: Command = {
  name: 'fence-devices',
  summary: "show or set a node's fence levels and devices (--set FILE.json)",
  args: ['NODE'],
  options: { set: { type: 'string' }, delete: { type: 'boolean' }, json: { type: 'boolean' } },
  async run([node], options) {
    const path = nodePath(node ?? '', 'fence-devices');
    let view: FenceDevicesView;
    if (options.delete) {
      await operatorCall('DELETE', path);
      return say(`fence devices of ${node} deleted`);
    }
    if (typeof options.set === 'string') {
      let config: unknown;
      try {
        config = JSON.parse(await readFile(options.set, 'utf8'));
      } catch (error) {
        throw new UsageError(`--set ${options.set}: ${(error as Error).message}`);
      }
      view = await operatorCall<FenceDevicesView>('PUT', path, config);
    } else {
      view = await operatorCall<FenceDevicesView>('GET', path);
    }
    // The JSON form is what --set takes back (secrets come back as "[redacted]" and are kept).
    if (options.json) return printJson({ levels: view.levels });
    printTable(
      ['level', 'device', 'agent', 'timeout', 'retries', 'confirm', 'options'],
      view.levels.flatMap((level, l) =>
        level.devices.map((d) => [
          l + 1,
          d.name ?? d.agent,
          d.agent,
          `${d.timeoutSeconds} s`,
          d.retries,
          d.confirm,
          Object.entries(d.options)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
        ]),
      ),
    );
    say(`updated ${view.updatedAt} by ${view.updatedBy}`);
  },
};

export const fencingHistory: Command = {
  name: 'fencing-history',
  summary: 'who fenced or unfenced which node, when, and what happened',
  args: [],
  options: { node: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(_args, options) {
    const limit = intOption(options, 'limit', 50, 1, 1000);
    const node = typeof options.node === 'string' ? `&node=${encodeURIComponent(options.node)}` : '';
    const entries = await operatorCall<FenceHistoryView[]>('GET', `/sf/v1/fencing-history?limit=${limit}${node}`);
    if (options.json) return printJson(entries);
    printTable(
      ['time', 'node', 'action', 'result', 'level', 'by', 'time taken', 'reason / detail'],
      entries.map((e) => [
        e.startedAt,
        e.node,
        e.action,
        e.result,
        e.level ?? '-',
        e.by,
        `${e.durationMs} ms`,
        [e.reason, e.detail].filter(Boolean).join(' — '),
      ]),
    );
  },
};
