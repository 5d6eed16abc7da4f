import { type Logger, pino } from 'pino';

/**
 * Paths that may hold secrets anywhere in a log object. Binding credentials, admin
 * passwords and basic-auth headers must never reach a log line.
 */
export const redactedPaths: readonly string[] = [
  'password',
  '*.password',
  '*.*.password',
  'adminPassword',
  '*.adminPassword',
  'credentials',
  '*.credentials',
  'uri',
  '*.uri',
  'secret',
  '*.secret',
  'req.headers.authorization',
  'headers.authorization',
  'env',
  '*.env',
];

export interface LoggerOptions {
  /** Component name, e.g. `agent` or `broker`. */
  name: string;
  /** @default process.env.SF_LOG_LEVEL ?? 'info' */
  level?: string;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino({
    name: options.name,
    level: options.level ?? process.env.SF_LOG_LEVEL ?? 'info',
    redact: { paths: [...redactedPaths], censor: '[redacted]' },
  });
}

export type { Logger };
