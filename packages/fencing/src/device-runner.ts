import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '@service-foundry/core';
import { type AgentRun, runAgentOnce } from './agent-process.js';
import { deviceLabel, type FenceDeviceConfig, type FenceOptionValue } from './device-config.js';
import type { FenceAgents } from './fence-agents.js';
import { secretValues } from './secrets.js';

/** The actions of the ClusterLabs fence-agent protocol that this runner issues. */
export type FenceAction = 'off' | 'on' | 'reboot' | 'status' | 'monitor' | 'list' | 'metadata';

/** What `status` said: exit 0 = ON, exit 2 = OFF, anything else = unknown. */
export type PowerState = 'on' | 'off' | 'unknown';

/** One action on one device, after its retries. */
export interface DeviceStep {
  action: FenceAction;
  ok: boolean;
  /** `status` only. */
  power?: PowerState;
  attempts: number;
  /** Of the last attempt. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Of the last attempt, redacted and truncated. */
  stdout: string;
  stderr: string;
  /** All attempts together, pauses included. */
  durationMs: number;
  /** Why it failed; empty when ok. */
  reason: string;
}

export interface DeviceRunContext {
  /** The node being fenced; sent as `nodename=` (as Pacemaker does). */
  node: string;
  /** The allow-list and option checks every device passes before it runs. */
  agents: FenceAgents;
  maxOutputBytes: number;
  retryDelayMs: number;
  log: Logger;
}

function optionText(value: FenceOptionValue): string {
  if (typeof value === 'boolean') return value ? '1' : '0';
  return String(value);
}

/**
 * The agent's stdin: `action=`, `nodename=`, then the device's options, one `key=value`
 * per line. Values were validated to hold no line breaks, so no option can smuggle in
 * another (`action=on` inside a password, say).
 */
export function encodeAgentOptions(
  options: Readonly<Record<string, FenceOptionValue>>,
  action: FenceAction,
  node: string,
): string {
  const lines = [`action=${action}`, `nodename=${node}`];
  for (const [name, value] of Object.entries(options)) {
    const text = optionText(value);
    if (/[\r\n\0]/.test(text) || /[\r\n\0=]/.test(name))
      throw new TypeError(`option ${name} cannot be sent on one line`);
    lines.push(`${name}=${text}`);
  }
  return `${lines.join('\n')}\n`;
}

function powerOf(run: AgentRun): PowerState {
  if (run.exitCode === 0) return 'on';
  if (run.exitCode === 2) return 'off';
  return 'unknown';
}

/** Succeeded as far as the protocol goes: `status` must give an answer, the rest exit 0. */
function succeeded(action: FenceAction, run: AgentRun): boolean {
  return action === 'status' ? powerOf(run) !== 'unknown' : run.exitCode === 0;
}

/** The last line an agent said, without the timestamp fence-agents' logging puts first. */
function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines[lines.length - 1] ?? '').replace(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d+ /, '').slice(0, 300);
}

function failureReason(run: AgentRun, timeoutSeconds: number): string {
  if (run.spawnError !== undefined) return `cannot start the agent: ${run.spawnError}`;
  if (run.timedOut) return `timed out after ${timeoutSeconds} s`;
  const said = lastLine(run.stderr) || lastLine(run.stdout);
  const how = run.signal ? `killed by ${run.signal}` : `exit code ${run.exitCode}`;
  return said ? `${how}: ${said}` : how;
}

/**
 * Runs `action` on `device`, retrying up to `device.retries` times when the run fails
 * (for `status`: when it gives no ON/OFF answer). The agent and its options are checked
 * first (allow-list, declared parameters), whoever wrote the device. Never throws: a
 * refused or missing agent, a crash or a timeout is the step's `reason`.
 */
export async function runDeviceAction(
  device: Readonly<FenceDeviceConfig>,
  action: FenceAction,
  ctx: DeviceRunContext,
): Promise<DeviceStep> {
  const started = performance.now();
  const label = deviceLabel(device);
  const step = (fields: Omit<DeviceStep, 'action' | 'durationMs'>): DeviceStep => ({
    action,
    ...fields,
    durationMs: Math.round(performance.now() - started),
  });
  let executable: string;
  let stdin: string;
  try {
    executable = (await ctx.agents.prepare(device)).path;
    stdin = encodeAgentOptions(device.options, action, ctx.node);
  } catch (error) {
    const reason = (error as Error).message;
    ctx.log.warn({ node: ctx.node, device: label, action, reason }, 'fence device cannot run');
    return step({
      ok: false,
      attempts: 0,
      exitCode: null,
      signal: null,
      timedOut: false,
      stdout: '',
      stderr: '',
      reason,
    });
  }
  const secrets = secretValues(device.options);
  const attempts = device.retries + 1;
  let run: AgentRun | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await delay(ctx.retryDelayMs);
    run = await runAgentOnce({
      executable,
      stdin,
      timeoutMs: device.timeoutSeconds * 1000,
      maxOutputBytes: ctx.maxOutputBytes,
      secrets,
    });
    const ok = succeeded(action, run);
    const fields = {
      node: ctx.node,
      device: label,
      agent: device.agent,
      action,
      attempt,
      exitCode: run.exitCode,
      timedOut: run.timedOut,
      ms: run.durationMs,
    };
    if (ok || attempt === attempts) {
      const reason = ok ? '' : failureReason(run, device.timeoutSeconds);
      if (ok) ctx.log.info(fields, 'fence device action done');
      else ctx.log.warn({ ...fields, reason }, 'fence device action failed');
      const result = step({
        ok,
        attempts: attempt,
        exitCode: run.exitCode,
        signal: run.signal,
        timedOut: run.timedOut,
        stdout: run.stdout,
        stderr: run.stderr,
        reason,
      });
      if (action === 'status') result.power = powerOf(run);
      return result;
    }
    ctx.log.info(
      { ...fields, reason: failureReason(run, device.timeoutSeconds) },
      'fence device action failed; retrying',
    );
  }
  // Unreachable: attempts >= 1 and the last attempt returns above.
  throw new Error('no attempt was made');
}
