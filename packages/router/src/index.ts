export { compileRouterConfig, type RouterConfig, type RouterOptions } from './config.js';
export { hostnameOf } from './host-header.js';
export { parseRouteRecord } from './route-record.js';
export { type RouteChange, RouteTable } from './route-table.js';
export { type RouterDependencies, type RunningRouter, startRouter } from './router.js';
export type { LimitCounters, RejectedRoute, RouterStatus, RouteStatus } from './status.js';
