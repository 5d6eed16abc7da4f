/**
 * Upgrades (`sf upgrade-service`, `sf upgrade-all`): moving an instance onto the maintenance
 * version and image its plan offers now (OSB `maintenance_info`).
 */

/** What an instance runs, or what its plan offers. */
export interface MaintenanceLevel {
  /** The plan's `maintenance_info.version`; null: not recorded, or the plan has none. */
  version: string | null;
  /** The container image; null: recorded before upgrades were (each container keeps its own). */
  image: string | null;
}

/**
 * What an upgrade costs the instance's clients: `switchover` (replicated: replicas restart
 * one at a time, then one switchover's write gap) or `restart` (one replica: unavailable
 * while it restarts).
 */
export type UpgradeInterruption = 'switchover' | 'restart';

/**
 * `GET /sf/v1/instances/:idOrName/upgrade` (and each item of `GET /sf/v1/upgrades`): what
 * an upgrade of the instance would do, before it starts.
 */
export interface UpgradeView {
  instanceId: string;
  name: string;
  service: string;
  plan: string;
  running: MaintenanceLevel;
  /** What an upgrade moves the instance to: the plan's current version and the catalog's image. */
  offered: MaintenanceLevel & { image: string };
  /** Why the instance qualifies; null: it runs what its plan offers (nothing to upgrade). */
  reason: string | null;
  interruption: UpgradeInterruption;
  /** What an upgrade does, as its operation will say. */
  description: string;
}

/**
 * `POST /sf/v1/instances/:idOrName/upgrade`: 202 with the `update` operation it started
 * (or the one already running for the same upgrade); 200 with `operation: null` when there
 * is nothing to upgrade.
 */
export interface UpgradeStarted extends UpgradeView {
  operation: string | null;
}
