import type { SchedulerMemberRecord } from '@service-foundry/core';

/** One live scheduler in `GET /sf/v1/schedulers`, eldest first. */
export interface SchedulerView extends SchedulerMemberRecord {
  /**
   * The eldest live member: it runs the controller (failover, routes, teardown) and, in
   * `leader` mode, places every replica. The others stand by and take over when its
   * session lease expires.
   */
  leader: boolean;
}
