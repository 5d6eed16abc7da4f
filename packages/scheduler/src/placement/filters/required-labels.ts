import type { Filter } from '../types.js';

/** The node carries every label the plan requires (`constraints.nodeLabels`). */
export const requiredLabels: Filter = (replica, { node }) => {
  const required = replica.requiredLabels;
  if (!required) return undefined;
  const missing: string[] = [];
  for (const key in required) {
    if (node.labels[key] !== required[key]) missing.push(`${key}=${required[key]}`);
  }
  return missing.length ? `lacks label ${missing.join(', ')}` : undefined;
};
