import type { BackupRecord, RelocationRecord, TransferStatusRecord } from '@service-foundry/core';

/** A backup as the operator API answers it: the record plus the hook's program, for display. */
export type BackupView = BackupRecord & { hook?: string };

/** `GET /sf/v1/instances/:id/backups`: newest first. */
export interface BackupList {
  backups: BackupView[];
}

/** `GET /sf/v1/instances/:id/relocations`: every relocation of the instance and every transfer of its volumes. */
export interface RelocationsView {
  relocations: RelocationRecord[];
  transfers: TransferStatusRecord[];
}
