import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NodeRuntimeError } from '../errors.js';

const exec = promisify(execFile);

/**
 * Runs a system tool (`ip`, `iptables`, `nsenter`, `umount`) and returns its stdout; a
 * failure becomes a NodeRuntimeError that quotes the command and what the tool said.
 * Arguments never hold secrets (addresses, names, paths only).
 */
export async function hostCommand(command: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  try {
    return (await exec(command, [...args], { timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 })).stdout;
  } catch (error) {
    const e = error as { code?: string | number; signal?: string | null; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new NodeRuntimeError(`${command} is not installed`, { cause: error });
    const how = e.signal ? `killed by ${e.signal}` : `exit code ${e.code ?? 'unknown'}`;
    const said = (e.stderr ?? '').trim() || `${how}, nothing on stderr`;
    throw new NodeRuntimeError(`${command} ${args.join(' ')} failed: ${said.slice(0, 500)}`, { cause: error });
  }
}

/** The same inside a network namespace (nsenter, not `ip netns exec`, which remounts /sys). */
export function inNamespace(netns: string, command: string, args: readonly string[]): Promise<string> {
  return hostCommand('nsenter', [`--net=/run/netns/${netns}`, '--', command, ...args]);
}

/** True when the command succeeds, false when it exits non-zero (`iptables -C`, `ip link show`). */
export async function succeeds(command: string, args: readonly string[]): Promise<boolean> {
  try {
    await exec(command, [...args], { timeout: 60_000 });
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') throw new NodeRuntimeError(`${command} is not installed`);
    return false;
  }
}
