#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLogger } from '@service-foundry/core';
import { compileSupervisionSpec } from './supervision-spec.js';
import { Supervisor } from './supervisor.js';

/**
 * `node supervise-main.js --spec FILE.json`: the supervisor `sf up` starts for each
 * platform process (and each isolated node boots for its agent). Exits 2 on a bad command
 * line or spec, 0 once SIGTERM/SIGINT have stopped the component.
 */
async function main(): Promise<void> {
  let specFile: string | undefined;
  try {
    specFile = parseArgs({ options: { spec: { type: 'string' } }, strict: true }).values.spec;
  } catch (error) {
    process.stderr.write(`supervise: ${(error as Error).message}; usage: supervise --spec FILE.json\n`);
    process.exit(2);
  }
  if (!specFile) {
    process.stderr.write('supervise: missing --spec; usage: supervise --spec FILE.json\n');
    process.exit(2);
  }
  let spec: ReturnType<typeof compileSupervisionSpec>;
  try {
    spec = compileSupervisionSpec(JSON.parse(await readFile(specFile, 'utf8')));
  } catch (error) {
    process.stderr.write(`supervise: ${specFile}: ${(error as Error).message}\n`);
    process.exit(2);
  }
  if (!spec.argv[0]?.startsWith('/')) {
    process.stderr.write(`supervise: ${specFile}: argv[0] must be an absolute path\n`);
    process.exit(2);
  }
  const supervisor = new Supervisor(spec, createLogger({ name: `supervise-${spec.name}` }));
  process.once('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.once('SIGINT', () => supervisor.stop('SIGINT'));
  await supervisor.run();
  process.exit(0);
}

await main();
