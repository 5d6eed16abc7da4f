import type { RotationStarted, RotationView } from '@service-foundry/api';
import type { Command } from '../command.js';
import { instancePath } from '../instance-path.js';
import { waitForOperation } from '../operation-wait.js';
import { printJson, printTable, say } from '../output.js';
import { client } from './services.js';

/** The broker gives up on a rotation after 10 min (a replica that never takes the new passwords). */
const rotationTimeoutMs = 12 * 60_000;

function replicaRows(view: RotationView): string[][] {
  return view.replicas.map((r) => [
    String(r.ordinal),
    r.node,
    r.state,
    r.passwords ? `generation ${r.passwords.generation}, ${r.passwords.phase}` : '(none reported)',
  ]);
}

export const rotateCredentials: Command = {
  name: 'rotate-credentials',
  summary:
    "replace an instance's own admin and replication passwords, without downtime (bindings keep theirs: sf rotate-service-key)",
  args: ['NAME'],
  options: { 'no-wait': { type: 'boolean' }, json: { type: 'boolean' } },
  async run([name = ''], options) {
    const broker = await client();
    const started = (await broker.request<RotationStarted>('POST', instancePath(name, '/credentials-rotation'))).body;
    if (options.json && options['no-wait']) return printJson(started);
    say(
      started.started
        ? `Rotating the passwords of ${name} (generation ${started.generation}): each replica takes on the new ones while the old ones still work, then the old ones are refused.`
        : `A rotation of ${name}'s passwords (generation ${started.generation}) is already under way: following it.`,
    );
    if (options['no-wait']) return say(`Follow it with \`sf service ${name}\``);
    const state = await waitForOperation(
      broker,
      started.instanceId,
      `rotation of ${name}'s passwords`,
      rotationTimeoutMs,
    );
    const final = await broker.get<RotationView>(instancePath(started.instanceId, '/credentials-rotation'));
    if (options.json) printJson(final);
    else printTable(['replica', 'node', 'state', 'passwords'], replicaRows(final));
    if (state !== 'succeeded') {
      process.exitCode = 1;
      return say(`Rotation of ${name}'s passwords ${state === 'gone' ? 'ended: the instance was deleted' : state}.`);
    }
    say(`OK: ${name}'s passwords are new (generation ${final.generation}); the old ones are refused.`);
  },
};
