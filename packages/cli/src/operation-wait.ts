import { waitFor } from '@service-foundry/core';
import type { BrokerClient } from './broker-client.js';
import { ProgressDisplay } from './progress-display.js';

/** An instance's last operation as OSB `last_operation` reports it. */
export interface OperationState {
  state: string;
  description: string;
}

/**
 * Polls `last_operation` until the operation leaves `in progress`; `onChange` hears each
 * new state or description (the controller rewrites it as the work goes on). `gone`: the
 * instance was deleted meanwhile (OSB answers 410).
 */
export async function watchOperation(
  broker: BrokerClient,
  id: string,
  what: string,
  timeoutMs: number,
  onChange: (op: OperationState) => void,
): Promise<OperationState | 'gone'> {
  let last = '';
  return waitFor(
    async () => {
      let op: OperationState;
      try {
        const { body } = await broker.request<{ state: string; description?: string }>(
          'GET',
          `/v2/service_instances/${id}/last_operation`,
        );
        op = { state: body.state, description: body.description ?? '' };
      } catch (error) {
        // OSB: 410 Gone answers last_operation once an instance is deleted.
        if ((error as { status?: number }).status === 410) return 'gone' as const;
        throw error;
      }
      const seen = `${op.state}\u0000${op.description}`;
      if (seen !== last) onChange(op);
      last = seen;
      return op.state === 'in progress' ? undefined : op;
    },
    { description: `${what} to finish`, timeoutMs, intervalMs: 500 },
  );
}

/** Polls `last_operation` until it leaves `in progress`, showing progress; the final state, or `gone`. */
export async function waitForOperation(
  broker: BrokerClient,
  id: string,
  what: string,
  timeoutMs: number,
): Promise<string> {
  const progress = new ProgressDisplay();
  const final = await watchOperation(broker, id, what, timeoutMs, (op) => {
    if (op.state === 'in progress')
      progress.status(`${what}: in progress${op.description ? ` — ${op.description}` : ''}`);
  });
  if (final === 'gone') {
    progress.done(`${what}: succeeded`);
    return 'gone';
  }
  progress.done(`${what}: ${final.state}${final.description ? ` — ${final.description}` : ''}`);
  return final.state;
}
