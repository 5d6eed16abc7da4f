import { isBrokenCircuitError } from 'cockatiel';
import {
  ClientClosedError,
  ClientRuntimeError,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdLockFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  EtcdWatchStreamEnded,
  GRPCGenericError,
} from 'etcd3';

/** Every error class of the etcd3 client: gRPC failures (one base class), etcd's own answers, a closed client. */
const etcdErrorClasses = [
  GRPCGenericError,
  ClientClosedError,
  ClientRuntimeError,
  EtcdError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdLockFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  EtcdWatchStreamEnded,
] as const;

/**
 * True for an error of the etcd client: etcd did not answer, refused, or answered with an
 * error; also the circuit breaker of the client's connection pool (cockatiel's, open after
 * repeated failures). Callers answer these as "the state store is not reachable".
 */
export function isEtcdClientError(error: unknown): boolean {
  return etcdErrorClasses.some((type) => error instanceof type) || isBrokenCircuitError(error);
}
