import { SfError } from '@service-foundry/core';

/** Wrong command line: printed with the usage line, exit code 2. */
export class UsageError extends SfError {
  constructor(message: string) {
    super('SF_ERR_INVALID_INPUT', message);
  }
}

/** The broker answered with an OSB error body. */
export class BrokerError extends SfError {
  readonly status: number;
  readonly osbError: string | undefined;
  constructor(status: number, osbError: string | undefined, description: string) {
    super(status === 404 || status === 410 ? 'SF_ERR_NOT_FOUND' : 'SF_ERR_INVALID_INPUT', description);
    this.status = status;
    this.osbError = osbError;
  }
}

/**
 * This machine could not do what an isolated node needs (a namespace, a link, a dockerd,
 * an iptables rule): the message names the step and what the tool said.
 */
export class NodeRuntimeError extends SfError {
  constructor(message: string, options?: ErrorOptions) {
    super('SF_ERR_PROCESS', message, options);
  }
}
