/** The operator API's replies, as `@service-foundry/api` declares them for the broker and `sf`. */
export type * from '@service-foundry/api';
export type { ApiArea, Principal, Role } from './api-areas.js';
export { authenticatedUser, authHook, Logins, principalOf } from './auth.js';
export {
  type BindingDriver,
  type BindingTarget,
  PostgresBindingDriver,
  renderStatement,
} from './binding-driver-postgres.js';
export type { BrokerContext } from './broker-context.js';
export {
  type BrokerConfig,
  type BrokerLogin,
  compileBrokerConfig,
  loadBrokerConfig,
  type OperatorLogin,
  type OperatorRole,
  type RouterPortRange,
} from './config.js';
export { type BrokerErrorCode, BrokerErrorCodes } from './errors.js';
export { OsbError, type OsbErrorBody, toOsbError } from './osb-errors.js';
export { supportedApiVersion } from './osb-headers.js';
export { buildServer, type RunningBroker, startBroker } from './server.js';
