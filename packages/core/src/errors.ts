/**
 * Stable error codes for every Service Foundry package. Codes never change meaning once
 * released; the broker maps them to OSB error bodies and the CLI prints them.
 */
export const ErrorCodes = {
  invalidConfig: 'SF_ERR_INVALID_CONFIG',
  invalidInput: 'SF_ERR_INVALID_INPUT',
  notFound: 'SF_ERR_NOT_FOUND',
  conflict: 'SF_ERR_CONFLICT',
  gone: 'SF_ERR_GONE',
  timeout: 'SF_ERR_TIMEOUT',
  etcd: 'SF_ERR_ETCD',
  docker: 'SF_ERR_DOCKER',
  catalog: 'SF_ERR_CATALOG',
  staleEpoch: 'SF_ERR_STALE_EPOCH',
  process: 'SF_ERR_PROCESS',
  secretBox: 'SF_ERR_SECRET_BOX',
  badRecord: 'SF_ERR_BAD_RECORD',
  /** A switchover was refused: no replica can take over without losing writes (or the instance cannot switch now). */
  switchoverRefused: 'SF_ERR_SWITCHOVER_REFUSED',
  /** A switchover started but was abandoned; the old primary serves again (the record says why). */
  switchoverFailed: 'SF_ERR_SWITCHOVER_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class SfError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A config file, environment variable or options object failed validation. */
export class InvalidConfigError extends SfError {
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    super(ErrorCodes.invalidConfig, `invalid ${what}: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** Input from a user or another platform (HTTP body, CLI argument, tar entry) is invalid. */
export class InvalidInputError extends SfError {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super(ErrorCodes.invalidInput, problems.length ? `${message}: ${problems.join('; ')}` : message);
    this.problems = problems;
  }
}

export class NotFoundError extends SfError {
  readonly kind: string;
  readonly id: string;
  constructor(kind: string, id: string) {
    super(ErrorCodes.notFound, `${kind} ${JSON.stringify(id)} not found`);
    this.kind = kind;
    this.id = id;
  }
}

export class ConflictError extends SfError {
  constructor(message: string) {
    super(ErrorCodes.conflict, message);
  }
}

export class TimeoutError extends SfError {
  readonly waitedMs: number;
  constructor(what: string, waitedMs: number, options?: ErrorOptions) {
    super(ErrorCodes.timeout, `timed out after ${waitedMs} ms waiting for ${what}`, options);
    this.waitedMs = waitedMs;
  }
}

export class CatalogError extends SfError {
  constructor(message: string) {
    super(ErrorCodes.catalog, message);
  }
}

export class DockerError extends SfError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.docker, message, options);
  }
}

export class ProcessError extends SfError {
  readonly exitCode: number | null;
  constructor(message: string, exitCode: number | null) {
    super(ErrorCodes.process, message);
    this.exitCode = exitCode;
  }
}

/** A sealed secret could not be opened: another key, another context, or altered. */
export class SecretBoxError extends SfError {
  /** The context (etcd key) the secret was opened for. */
  readonly context: string;
  constructor(context: string, reason: string) {
    super(ErrorCodes.secretBox, `cannot open the secret at ${context}: ${reason}`);
    this.context = context;
  }
}

/**
 * A value read from etcd is not the record its key holds (not JSON, a field missing or of
 * the wrong type, an unknown enum value, a record naming another key). Readers skip or
 * refuse it; they never act on it.
 */
export class BadRecordError extends SfError {
  /** The etcd key the value was read from. */
  readonly key: string;
  /** Which record the key should hold (`assignment`, `route`, …). */
  readonly record: string;
  /** One entry per field at fault, each starting with the field's JSON pointer. */
  readonly problems: readonly string[];
  constructor(key: string, record: string, problems: readonly string[]) {
    super(ErrorCodes.badRecord, `bad ${record} record at ${key}: ${problems.join('; ')}`);
    this.key = key;
    this.record = record;
    this.problems = problems;
  }
}

export function isSfError(error: unknown): error is SfError {
  return error instanceof SfError;
}
