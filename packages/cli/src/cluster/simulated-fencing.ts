import { simAgentPath } from '@service-foundry/fencing';
import type { BrokerClient } from '../broker-client.js';
import type { ClusterFile } from './cluster-file.js';
import { componentPaths } from './components.js';
import type { NodeRuntime } from './node-runtime.js';

/**
 * Gives each node of the one-machine cluster a fence device unless an operator configured
 * one: the project's own `fence_sf_sim`. On an isolated node it is the node's power switch
 * (`boot_file`: off kills every process of the node's namespace, on boots it as `sf up`
 * does); on a node sharing this machine's engine it kills the node's agent and containers.
 */
export async function configureSimulatedFencing(
  broker: BrokerClient,
  dir: string,
  cluster: Readonly<ClusterFile>,
  runtime: NodeRuntime | undefined,
): Promise<void> {
  for (const node of cluster.nodes) {
    const path = `/sf/v1/nodes/${node.name}/fence-devices`;
    const existing = await broker.request('GET', path).then(
      () => true,
      (error: unknown) => {
        if ((error as { status?: number }).status === 404) return false;
        throw error;
      },
    );
    if (existing) continue;
    const options = runtime
      ? { plug: node.name, cluster: cluster.clusterId, boot_file: runtime.node(node.name).bootFile }
      : { plug: node.name, cluster: cluster.clusterId, pid_file: componentPaths(dir, `agent-${node.name}`).pidFile };
    await broker.request('PUT', path, {
      levels: [
        {
          // Powering an isolated node on starts its dockerd and agent: room for a loaded machine.
          devices: [{ agent: simAgentPath(), options, timeoutSeconds: runtime ? 60 : 10 }],
        },
      ],
    });
  }
}
