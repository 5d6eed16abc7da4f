import type { Fencing } from './fencing.js';

/** The shape the failover controller calls (scheduler's `Fencer`). */
export interface NodeFencer {
  fence(node: string, reason: string): Promise<{ fenced: boolean; detail: string }>;
}

/**
 * Adapts {@link Fencing} to the controller: `fenced` only when `fence/<node>` says the node
 * is confirmed off. Errors (etcd unreachable, …) are answered as not fenced, with why.
 */
export function controllerFencer(fencing: Fencing, by = 'controller'): NodeFencer {
  return {
    async fence(node, reason) {
      try {
        const result = await fencing.fence(node, { by, reason });
        if (result.state === 'fenced') {
          const how = result.ranDevices ? `at level ${result.level}` : result.history.detail;
          return { fenced: true, detail: `fenced ${how}` };
        }
        return { fenced: false, detail: result.reason };
      } catch (error) {
        return { fenced: false, detail: `fencing could not run: ${(error as Error).message}` };
      }
    },
  };
}
