import { deviceLabel, type FenceDeviceConfig, type FenceLevelConfig, type FenceOptionValue } from './device-config.js';
import { type DeviceRunContext, type DeviceStep, runDeviceAction } from './device-runner.js';
import { redactOptions } from './secrets.js';

/** What happened to one device of one level. */
export interface DeviceOutcome {
  /** 1-based, as operators count levels. */
  level: number;
  device: string;
  agent: string;
  /** The options sent, secrets redacted. */
  options: Record<string, FenceOptionValue>;
  ok: boolean;
  /** Empty when ok. */
  reason: string;
  durationMs: number;
  /** `off` then its confirming `status`, or `on`. */
  steps: DeviceStep[];
}

export interface LevelOutcome {
  level: number;
  ok: boolean;
  devices: DeviceOutcome[];
  durationMs: number;
}

export interface LevelsResult {
  ok: boolean;
  /** The level that succeeded. */
  level?: number;
  levels: LevelOutcome[];
  /** Why it failed: every device's reason, by level. Empty when ok. */
  reason: string;
  durationMs: number;
}

function outcome(level: number, device: Readonly<FenceDeviceConfig>, steps: DeviceStep[], reason: string) {
  return {
    level,
    device: deviceLabel(device),
    agent: device.agent,
    options: redactOptions(device.options),
    ok: reason === '',
    reason,
    durationMs: steps.reduce((sum, s) => sum + s.durationMs, 0),
    steps,
  } satisfies DeviceOutcome;
}

/**
 * `off`, then — unless the device is marked `confirm: "exit-code"` — `status`, which must
 * say OFF. A device whose `off` "succeeded" but whose status still says ON has not fenced
 * anything.
 */
export async function powerOffAndConfirm(
  level: number,
  device: Readonly<FenceDeviceConfig>,
  ctx: DeviceRunContext,
): Promise<DeviceOutcome> {
  const off = await runDeviceAction(device, 'off', ctx);
  if (!off.ok) return outcome(level, device, [off], `off failed: ${off.reason}`);
  if (device.confirm === 'exit-code') return outcome(level, device, [off], '');
  const status = await runDeviceAction(device, 'status', ctx);
  if (!status.ok) return outcome(level, device, [off, status], `off not confirmed: status failed: ${status.reason}`);
  if (status.power !== 'off') return outcome(level, device, [off, status], 'off not confirmed: status still says ON');
  return outcome(level, device, [off, status], '');
}

/** `on` by exit code only: power coming back does not mean the node is back (its agent's lease says that). */
export async function powerOn(level: number, device: Readonly<FenceDeviceConfig>, ctx: DeviceRunContext) {
  const on = await runDeviceAction(device, 'on', ctx);
  return outcome(level, device, [on], on.ok ? '' : `on failed: ${on.reason}`);
}

function summarize(levels: readonly LevelOutcome[]): string {
  return levels
    .map((l) => {
      const failed = l.devices.filter((d) => !d.ok).map((d) => `${d.device}: ${d.reason}`);
      return `level ${l.level}: ${failed.join('; ')}`;
    })
    .join(' | ');
}

/**
 * Runs one level: its devices in parallel (all must succeed, and waiting on each in turn
 * would only add to the failover time); a level with any failed device has failed.
 */
export async function runLevel(
  levelNumber: number,
  level: Readonly<FenceLevelConfig>,
  run: (level: number, device: Readonly<FenceDeviceConfig>) => Promise<DeviceOutcome>,
): Promise<LevelOutcome> {
  const started = performance.now();
  const devices = await Promise.all(level.devices.map((device) => run(levelNumber, device)));
  return {
    level: levelNumber,
    ok: devices.every((d) => d.ok),
    devices,
    durationMs: Math.round(performance.now() - started),
  };
}

/** Tries the levels in order until one powers the node off (confirmed). */
export async function runFenceLevels(
  levels: readonly Readonly<FenceLevelConfig>[],
  ctx: DeviceRunContext,
): Promise<LevelsResult> {
  const started = performance.now();
  const outcomes: LevelOutcome[] = [];
  for (const [index, level] of levels.entries()) {
    const result = await runLevel(index + 1, level, (n, device) => powerOffAndConfirm(n, device, ctx));
    outcomes.push(result);
    if (result.ok) {
      return { ok: true, level: result.level, levels: outcomes, reason: '', durationMs: elapsed(started) };
    }
  }
  const reason = levels.length === 0 ? 'no fence devices configured' : summarize(outcomes);
  return { ok: false, levels: outcomes, reason, durationMs: elapsed(started) };
}

/** Powers on the devices of one level (the one that fenced the node). */
export async function runUnfenceLevel(
  levelNumber: number,
  level: Readonly<FenceLevelConfig>,
  ctx: DeviceRunContext,
): Promise<LevelsResult> {
  const started = performance.now();
  const result = await runLevel(levelNumber, level, (n, device) => powerOn(n, device, ctx));
  return {
    ok: result.ok,
    ...(result.ok ? { level: levelNumber } : {}),
    levels: [result],
    reason: result.ok ? '' : summarize([result]),
    durationMs: elapsed(started),
  };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
