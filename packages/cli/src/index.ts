export { BrokerClient, bindingIdFor } from './broker-client.js';
export { type ClusterFile, readClusterFile } from './cluster/cluster-file.js';
export { loadTarget, stateDir, type Target } from './target.js';
