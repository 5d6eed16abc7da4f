import { ErrorCodes, SfError } from '@service-foundry/core';

/**
 * A transfer failed between the two agents: the peer refused the request (status set),
 * the connection broke, or the body did not match its signed digest. Nothing was committed
 * on the receiving side when this is thrown.
 *
 * Core has no code for transport failures yet; `SF_ERR_PROCESS` is the nearest ("another
 * party failed"). The HTTP status, when there is one, says more.
 */
export class VolumeTransferError extends SfError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(ErrorCodes.process, message, options);
    this.status = status;
  }
}
