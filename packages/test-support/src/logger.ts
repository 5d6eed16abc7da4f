import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@service-foundry/core';
import { pino } from 'pino';

/**
 * A logger that writes nothing: what tests check is behaviour, not log lines. Set
 * `SF_TEST_LOG_LEVEL` (e.g. `debug`) to see what the components under test log.
 */
export function silentLogger(name = 'test'): Logger {
  return createLogger({ name, level: process.env.SF_TEST_LOG_LEVEL ?? 'silent' });
}

/** A log line as parsed JSON. */
export type LogLine = Record<string, unknown> & { msg?: string };

export interface CapturedLog {
  log: Logger;
  /** Every line written so far, parsed. */
  lines: LogLine[];
  /** Everything written so far, byte for byte: to check what never reaches a log. */
  text(): string;
}

export interface CaptureLogOptions {
  /** @default 'debug' */
  level?: string;
}

/**
 * A real pino logger writing into memory, for tests that check what is logged and how
 * often. Plain pino, without the components' redaction: a secret that reaches a line is seen.
 */
export function captureLog(options: CaptureLogOptions = {}): CapturedLog {
  const lines: LogLine[] = [];
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const written = chunk.toString('utf8');
      text += written;
      for (const line of written.split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { log: pino({ level: options.level ?? 'debug' }, sink), lines, text: () => text };
}
