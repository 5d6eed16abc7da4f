import { type ErrorCode, ErrorCodes, SfError } from '@service-foundry/core';

/**
 * Codes the broker reports that core has no class for. They follow core's SF_ERR_* naming
 * and, like core's, never change meaning once released.
 */
export const BrokerErrorCodes = {
  unauthorized: 'SF_ERR_UNAUTHORIZED',
  forbidden: 'SF_ERR_FORBIDDEN',
  tooLarge: 'SF_ERR_TOO_LARGE',
  unavailable: 'SF_ERR_UNAVAILABLE',
  internal: 'SF_ERR_INTERNAL',
  binding: 'SF_ERR_BINDING',
} as const;

/** Every code a broker answer can carry in `sf_code`. */
export type BrokerErrorCode = ErrorCode | (typeof BrokerErrorCodes)[keyof typeof BrokerErrorCodes];

/** A catalog binding statement names a placeholder the broker does not fill in. */
export class UnknownPlaceholderError extends SfError {
  readonly placeholder: string;
  constructor(placeholder: string) {
    super(ErrorCodes.catalog, `statement uses unknown placeholder {{${placeholder}}}`);
    this.placeholder = placeholder;
  }
}

/**
 * A value the broker generated for a binding statement does not have the one shape its
 * placeholder allows: refused before anything is sent, so no statement can be injected.
 */
export class UnsafeBindingValueError extends SfError {
  readonly placeholder: string;
  constructor(placeholder: string) {
    super(ErrorCodes.invalidInput, `value for {{${placeholder}}} has an unsafe shape`);
    this.placeholder = placeholder;
  }
}
