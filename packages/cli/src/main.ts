#!/usr/bin/env node
import { isSfError } from '@service-foundry/core';
import { type Command, parseCommandLine, usageOf } from './command.js';
import { backup, backups, restore } from './commands/backups.js';
import { chaos } from './commands/chaos.js';
import { events, nodes } from './commands/cluster.js';
import { rotateCredentials } from './commands/credentials.js';
import { certs, etcdRoles } from './commands/deploy-tools.js';
import { down } from './commands/down.js';
import { etcd } from './commands/etcd.js';
import { explain } from './commands/explain.js';
import { fence, fenceDevices, fencingHistory, unfence } from './commands/fencing.js';
import { images } from './commands/images.js';
import {
  bindService,
  createServiceKey,
  deleteServiceKey,
  rotateServiceKey,
  serviceKey,
  unbindService,
} from './commands/keys.js';
import { node } from './commands/node-controls.js';
import { relocate } from './commands/relocate.js';
import { createService, deleteService, marketplace, service, services, updateService } from './commands/services.js';
import { status } from './commands/status.js';
import { switchover } from './commands/switchover.js';
import { target } from './commands/target.js';
import { up } from './commands/up.js';
import { upgradeAll, upgradeService } from './commands/upgrade.js';
import { UsageError } from './errors.js';

const commands: Command[] = [
  up,
  down,
  status,
  images,
  target,
  marketplace,
  createService,
  updateService,
  upgradeService,
  upgradeAll,
  rotateCredentials,
  services,
  service,
  explain,
  deleteService,
  createServiceKey,
  bindService,
  serviceKey,
  rotateServiceKey,
  deleteServiceKey,
  unbindService,
  relocate,
  switchover,
  chaos,
  backup,
  backups,
  restore,
  nodes,
  node,
  events,
  fence,
  unfence,
  fenceDevices,
  fencingHistory,
  certs,
  etcdRoles,
  etcd,
];

function help(): void {
  process.stdout.write('sf — Service Foundry CLI\n\n');
  for (const command of commands) process.stdout.write(`  ${usageOf(command).padEnd(62)} ${command.summary}\n`);
  process.stdout.write('\nState and target live in $SF_HOME (default ./.sf).\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    help();
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`sf: unknown command ${JSON.stringify(name)}; see \`sf help\`\n`);
    return 2;
  }
  try {
    const { args, options } = parseCommandLine(command, rest);
    await command.run(args, options);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`sf ${name}: ${error.message}\n`);
      return 2;
    }
    const code = isSfError(error) ? ` [${error.code}]` : '';
    process.stderr.write(`sf ${name}: ${(error as Error).message}${code}\n`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
