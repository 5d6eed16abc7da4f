import { isKeySegment } from './keyspace.js';

/**
 * Names under which an agent's volume server offers data to other agents (the `:name` of
 * `/volumes/:name/…`, docs/volumes.md). Callers never name a Docker volume directly: the
 * serving agent maps these to the directory it holds, so neither side needs the other's
 * volume naming.
 */
export type ServedVolume =
  | { kind: 'replica'; instanceId: string; ordinal: number }
  | { kind: 'backup'; instanceId: string; backupId: string };

const backupIdPattern = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

export function isBackupId(value: string): boolean {
  return backupIdPattern.test(value);
}

/** `replica.<instanceId>.<ordinal>`: the current volume of that replica on the serving node. */
export function replicaVolumeSource(instanceId: string, ordinal: number): string {
  return `replica.${instanceId}.${ordinal}`;
}

/** `backup.<instanceId>.<backupId>`: a backup in the serving agent's store. */
export function backupVolumeSource(instanceId: string, backupId: string): string {
  if (!isBackupId(backupId)) throw new TypeError(`backup id ${JSON.stringify(backupId)} is not valid`);
  return `backup.${instanceId}.${backupId}`;
}

export function parseServedVolume(name: string): ServedVolume | undefined {
  const replica = /^replica\.(.+)\.(0|[1-9][0-9]{0,5})$/.exec(name);
  if (replica?.[1] && replica[2] && isKeySegment(replica[1])) {
    return { kind: 'replica', instanceId: replica[1], ordinal: Number(replica[2]) };
  }
  const backup = /^backup\.(.+)\.([^.]+)$/.exec(name);
  if (backup?.[1] && backup[2] && isKeySegment(backup[1]) && isBackupId(backup[2])) {
    return { kind: 'backup', instanceId: backup[1], backupId: backup[2] };
  }
  return undefined;
}
