import { labelKeys, type NodeIdentity, nodeLabels, type ReplicaRef, replicaResourceName } from './container-spec.js';
import type { DockerRuntime } from './docker-runtime.js';

/**
 * Data volumes of a replicated service's replica. Docker cannot relabel a volume, so a
 * rebuild never reuses one: it makes a new volume and the old one stays, untouched, for an
 * operator to inspect or remove (an event names it).
 *
 * | volume                                   | when                                                      |
 * |------------------------------------------|-----------------------------------------------------------|
 * | `sf-<node>-<inst>-<ord>`                 | generation 0 (the same name as before replication)        |
 * | `sf-<node>-<inst>-<ord>-g<generation>`   | the controller bumped the generation                      |
 * | `sf-<node>-<inst>-<ord>-g<gen>-e<epoch>` | a primary demoted without a generation bump (rebuild)     |
 *
 * Every volume carries `sf.generation` (and `sf.rebuild-epoch` for the last kind), so the
 * volume in use survives an agent restart between removing a container and creating the
 * next one: the current volume of generation N is the one with the highest rebuild epoch.
 */
export function replicaVolumeName(node: string, ref: ReplicaRef, generation: number, rebuildEpoch?: number): string {
  const base = replicaResourceName(node, ref);
  if (rebuildEpoch !== undefined) return `${base}-g${generation}-e${rebuildEpoch}`;
  return generation > 0 ? `${base}-g${generation}` : base;
}

export function replicaVolumeSelector(identity: NodeIdentity, ref: ReplicaRef): Record<string, string> {
  return { ...nodeLabels(identity), [labelKeys.instance]: ref.instanceId, [labelKeys.ordinal]: String(ref.ordinal) };
}

/** The volume a new container of `generation` mounts (existing or to be created). */
export async function currentReplicaVolume(
  docker: DockerRuntime,
  identity: NodeIdentity,
  ref: ReplicaRef,
  generation: number,
): Promise<string> {
  const volumes = await docker.listVolumeSummaries(replicaVolumeSelector(identity, ref));
  let best: { name: string; rank: number } | undefined;
  for (const volume of volumes) {
    // Volumes from before replication have no generation label: they are generation 0.
    if ((volume.labels[labelKeys.generation] ?? '0') !== String(generation)) continue;
    const rank = Number(volume.labels[labelKeys.rebuildEpoch] ?? -1);
    if (!Number.isFinite(rank)) continue;
    if (!best || rank > best.rank) best = { name: volume.name, rank };
  }
  return best?.name ?? replicaVolumeName(identity.node, ref, generation);
}
