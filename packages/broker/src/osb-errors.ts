import { ErrorCodes, isEtcdClientError, isSfError } from '@service-foundry/core';
import { type BrokerErrorCode, BrokerErrorCodes } from './errors.js';
import { requestLimits } from './limits.js';

/** Every error response: OSB's `error` + `description`, plus our stable code. */
export interface OsbErrorBody {
  error: string;
  description: string;
  sf_code: BrokerErrorCode;
  /** Errors of an update or a deprovision only (OSB 2.16). */
  instance_usable?: boolean;
  /** Errors of an update only (OSB 2.16). */
  update_repeatable?: boolean;
}

/** What a failed update or deprovision leaves: OSB's `instance_usable` and `update_repeatable`. */
export interface OperationOutcome {
  instanceUsable: boolean;
  /** Updates only; absent for a deprovision. */
  updateRepeatable?: boolean;
}

/** An error that already knows its HTTP status and OSB body. */
export class OsbError extends Error {
  /** Set on errors of an update or deprovision; sent to platforms of OSB 2.16 and later. */
  outcome: OperationOutcome | undefined;

  constructor(
    readonly status: number,
    readonly error: string,
    description: string,
    readonly sfCode: BrokerErrorCode,
    options?: ErrorOptions,
  ) {
    super(description, options);
    this.name = 'OsbError';
  }

  /** Marks this as an error of an update or deprovision that leaves `outcome`. */
  withOutcome(outcome: OperationOutcome): this {
    this.outcome = outcome;
    return this;
  }

  /** The body; `withOutcome` when the platform knows `instance_usable` (2.16). */
  body(withOutcome = false): OsbErrorBody {
    const body: OsbErrorBody = { error: this.error, description: this.message, sf_code: this.sfCode };
    if (withOutcome && this.outcome) {
      body.instance_usable = this.outcome.instanceUsable;
      if (this.outcome.updateRepeatable !== undefined) body.update_repeatable = this.outcome.updateRepeatable;
    }
    return body;
  }
}

export const badRequest = (description: string) =>
  new OsbError(400, 'BadRequest', description, ErrorCodes.invalidInput);

export const notFound = (description: string) => new OsbError(404, 'NotFound', description, ErrorCodes.notFound);

export const conflict = (description: string) => new OsbError(409, 'Conflict', description, ErrorCodes.conflict);

/** OSB: the operation can only run asynchronously and the platform did not say it accepts that. */
export const asyncRequired = (what: string) =>
  new OsbError(
    422,
    'AsyncRequired',
    `${what} is asynchronous: repeat the request with the query parameter accepts_incomplete=true`,
    ErrorCodes.invalidInput,
  );

/** OSB: another operation on the same resource is in progress; the platform must wait. */
export const concurrencyError = (description: string) =>
  new OsbError(422, 'ConcurrencyError', description, ErrorCodes.conflict);

/**
 * OSB: the `maintenance_info.version` of a provision or update is not the plan's in the
 * catalog; the platform should fetch the catalog again.
 */
export const maintenanceInfoConflict = (description: string) =>
  new OsbError(422, 'MaintenanceInfoConflict', description, ErrorCodes.conflict);

export const unauthorized = () =>
  new OsbError(401, 'Unauthorized', 'missing or wrong HTTP basic-auth credentials', BrokerErrorCodes.unauthorized);

/** A known login asked for something its role does not allow. */
export const forbidden = (description: string) =>
  new OsbError(403, 'Forbidden', description, BrokerErrorCodes.forbidden);

/** A body, or a part of one, over its size limit (413). */
export const payloadTooLarge = (description: string) =>
  new OsbError(413, 'PayloadTooLarge', description, BrokerErrorCodes.tooLarge);

export const uriTooLong = (description: string) =>
  new OsbError(414, 'URITooLong', description, BrokerErrorCodes.tooLarge);

export const methodNotAllowed = (description: string) =>
  new OsbError(405, 'MethodNotAllowed', description, ErrorCodes.invalidInput);

/** Status and OSB error name for each core error code, for errors that escape a route. */
const sfCodeStatus: Partial<Record<BrokerErrorCode, { status: number; error: string }>> = {
  [ErrorCodes.invalidInput]: { status: 400, error: 'BadRequest' },
  [ErrorCodes.notFound]: { status: 404, error: 'NotFound' },
  [ErrorCodes.conflict]: { status: 409, error: 'Conflict' },
  [ErrorCodes.gone]: { status: 410, error: 'Gone' },
  [ErrorCodes.staleEpoch]: { status: 422, error: 'ConcurrencyError' },
  [ErrorCodes.timeout]: { status: 504, error: 'Timeout' },
  [ErrorCodes.etcd]: { status: 503, error: 'EtcdUnavailable' },
  [ErrorCodes.catalog]: { status: 500, error: 'CatalogError' },
};

/**
 * Fastify's own errors (body parsing) that reach the error handler, by code. OSB asks for
 * 400 when a body is rejected for its content type, so that is not a 415 here.
 */
const fastifyCodes: Record<string, { status: number; error: string; description: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    error: 'MalformedJson',
    description: 'the request body is not valid JSON',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, error: 'BadRequest', description: 'the request body is empty' },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    error: 'PayloadTooLarge',
    description: `the request body is larger than ${requestLimits.bodyBytes} bytes`,
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 400,
    error: 'UnsupportedMediaType',
    description: 'the request body must be JSON (Content-Type: application/json)',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    error: 'BadRequest',
    description: 'the Content-Length header does not match the body',
  },
  // Routing errors, reported through the server's `frameworkErrors` option.
  FST_ERR_BAD_URL: {
    status: 400,
    error: 'BadRequest',
    description: 'the URL path is not valid: bad percent-encoding',
  },
  FST_ERR_MAX_PARAM_LENGTH: {
    status: 414,
    error: 'URITooLong',
    description: `a path segment of the URL is longer than ${requestLimits.paramChars} characters`,
  },
};

/** OSB-style error names for the other 4xx statuses Fastify may report. */
const statusNames: Record<number, string> = {
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  408: 'RequestTimeout',
  411: 'LengthRequired',
  413: 'PayloadTooLarge',
  414: 'URITooLong',
  415: 'UnsupportedMediaType',
  431: 'RequestHeaderFieldsTooLarge',
};

interface FastifyLikeError extends Error {
  code?: string;
  statusCode?: number;
  validation?: unknown[];
  validationContext?: string;
}

/**
 * Turns anything thrown while serving a request into a status and an OSB error body. Only
 * failures of the broker or its dependencies become 5xx; input problems are always 4xx.
 */
export function toOsbError(thrown: unknown): OsbError {
  if (thrown instanceof OsbError) return thrown;
  if (isSfError(thrown)) {
    const mapped = sfCodeStatus[thrown.code] ?? { status: 500, error: 'InternalError' };
    return new OsbError(mapped.status, mapped.error, thrown.message, thrown.code, { cause: thrown });
  }
  if (!(thrown instanceof Error)) {
    return new OsbError(500, 'InternalError', 'internal error', BrokerErrorCodes.internal);
  }
  const error = thrown as FastifyLikeError;
  if (error.validation) {
    // Fastify's schema validation of body, query or params: the message lists ajv's findings.
    return new OsbError(400, 'BadRequest', error.message, ErrorCodes.invalidInput, { cause: error });
  }
  const known = error.code ? fastifyCodes[error.code] : undefined;
  if (known) {
    return new OsbError(known.status, known.error, known.description, ErrorCodes.invalidInput, { cause: error });
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    const name = statusNames[error.statusCode] ?? 'BadRequest';
    return new OsbError(error.statusCode, name, error.message, ErrorCodes.invalidInput, { cause: error });
  }
  if (isEtcdClientError(error)) {
    return new OsbError(
      503,
      'EtcdUnavailable',
      'the cluster state store (etcd) is not reachable; retry later',
      ErrorCodes.etcd,
      {
        cause: error,
      },
    );
  }
  return new OsbError(
    500,
    'InternalError',
    'internal error; the broker log has the details',
    BrokerErrorCodes.internal,
    {
      cause: error,
    },
  );
}
