import type { AssignmentRecord, ContainerLimits } from '@service-foundry/core';
import type { DockerRuntime } from './docker-runtime.js';
import type { StepOutcome } from './replica-observation.js';

/**
 * A running service's memory is lowered only while it uses at most this share of the new
 * limit: the kernel would otherwise reclaim, then kill a process of the server (a crash
 * recovery, or a dead server) to enforce it.
 */
export const lowerMemoryHeadroom = 0.9;

/** The CPU and memory an assignment asks its container to run with. */
export function wantedLimits(assignment: Pick<AssignmentRecord, 'resources'>): ContainerLimits {
  return { cpuMillis: assignment.resources.cpuMillis, memoryMb: assignment.resources.memoryMb };
}

function describe(limits: ContainerLimits): string {
  return `${limits.cpuMillis}m CPU, ${limits.memoryMb} MB memory`;
}

/**
 * Changes a container's limits in place (a plan change of CPU or memory): no restart, the
 * service keeps its connections. A lower memory limit is refused while the service uses
 * more than `lowerMemoryHeadroom` of it, with a message saying so; the agent tries again.
 */
export async function applyLimits(
  docker: Pick<DockerRuntime, 'updateLimits' | 'memoryInUseMb'>,
  containerId: string,
  wanted: ContainerLimits,
  current: { limits?: ContainerLimits; running: boolean } | undefined,
): Promise<StepOutcome> {
  try {
    if (current?.running && current.limits && wanted.memoryMb < current.limits.memoryMb) {
      const inUse = await docker.memoryInUseMb(containerId);
      if (inUse > wanted.memoryMb * lowerMemoryHeadroom) {
        return {
          ok: false,
          error: `limits stay ${describe(current.limits)}: the service uses ${Math.ceil(inUse)} MB, more than ${Math.round(lowerMemoryHeadroom * 100)}% of the ${wanted.memoryMb} MB asked`,
        };
      }
    }
    await docker.updateLimits(containerId, wanted);
    return { ok: true };
  } catch (error) {
    return { ok: false, error: `limits not changed to ${describe(wanted)}: ${(error as Error).message}` };
  }
}
