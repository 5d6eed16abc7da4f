import type { FenceDeviceConfig, FenceLevelConfig } from './device-config.js';

/** The longest one device can take: every attempt timing out, pauses between, twice when `off` is confirmed by `status`. */
export function deviceWorstCaseMs(device: Readonly<FenceDeviceConfig>, retryDelayMs: number): number {
  const action = (device.retries + 1) * device.timeoutSeconds * 1000 + device.retries * retryDelayMs;
  return device.confirm === 'status' ? 2 * action : action;
}

/**
 * The longest a fencing attempt can run: levels run one after the other, the devices of a
 * level in parallel. A claim's deadline is this plus a grace period; a claim still
 * `fencing` after its deadline belongs to a runner that died.
 */
export function worstCaseMs(levels: readonly Readonly<FenceLevelConfig>[], retryDelayMs: number): number {
  let total = 0;
  for (const level of levels) {
    total += Math.max(0, ...level.devices.map((d) => deviceWorstCaseMs(d, retryDelayMs)));
  }
  return Math.ceil(total);
}
