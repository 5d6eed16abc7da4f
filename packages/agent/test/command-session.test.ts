import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { ServiceReplicationRecipe } from '@service-foundry/core';
import { waitFor } from '@service-foundry/core';
import { docker, ensureBusyboxImage, removeContainer } from '@service-foundry/test-support/docker';
import { CommandSessions } from '../src/command-session.js';
import { CommandSessionError, ReplicationCommandError } from '../src/errors.js';
import { ReplicationCommands, sessionRequest } from '../src/replication-commands.js';
import { ensureReplicatedImage, runtime } from './replication-helpers.js';

/**
 * The agent's side of the command session (command-session.ts) against real containers:
 * a busybox program that speaks the protocol and whose `promote` never answers (for the
 * deadline), and the replicated test service, whose program has no session (an image
 * from before it). The catalog's own programs are tested in packages/images
 * (postgres-session.test.ts).
 */

const sessionProgram = `#!/bin/sh
case "\${1:-}" in
  session)
    echo "sf-session 1"
    while read -r request; do
      case "$request" in
        position) echo "0 $(cat /position)" ;;
        role) echo "0 primary" ;;
        promote) sleep 300 ;;
        *) echo "refused $request" >&2; echo "2 " ;;
      esac
    done ;;
  position) echo 7 ;;
  *) exit 2 ;;
esac
`;

function recipe(program: string, session: boolean): ServiceReplicationRecipe {
  return {
    port: 8080,
    env: {
      role: 'R',
      upstreamHost: 'H',
      upstreamPort: 'P',
      replicationUser: 'U',
      replicationPasswordFile: 'F',
      replicaName: 'N',
    },
    promote: [program, 'promote'],
    follow: [program, 'follow', '{{host}}', '{{port}}'],
    configure: [program, 'configure', '{{durability}}', '{{localIo}}'],
    position: [program, 'position'],
    role: [program, 'role'],
    ...(session ? { session: [program, 'session'] } : {}),
  };
}

async function runContainer(t: TestContext, image: string, cmd: string[], env: string[] = []): Promise<string> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    Env: env,
    Labels: { 'sf.test': 'command-session' },
  });
  t.after(() => removeContainer(container.id));
  await container.start();
  return container.id;
}

test('which commands go through a session: the recipe names one, and the command is its program with role, position or promote', () => {
  const withSession = recipe('/bin/p', true);
  assert.equal(sessionRequest(withSession, withSession.position), 'position');
  assert.equal(sessionRequest(withSession, withSession.promote), 'promote');
  assert.equal(sessionRequest(withSession, ['/bin/p', 'follow', 'h', '1']), undefined);
  assert.equal(sessionRequest(withSession, ['/bin/p', 'checkpoint']), undefined);
  assert.equal(sessionRequest(withSession, ['/bin/other', 'position']), undefined);
  assert.equal(sessionRequest(recipe('/bin/p', false), ['/bin/p', 'position']), undefined);
});

test('a session answers readings, a deadline closes it and the next reading opens a new one; a stopped container ends it', async (t) => {
  const image = await ensureBusyboxImage({
    repo: 'service-foundry-test/session',
    cmd: ['sleep', '600'],
    applets: ['sh', 'cat', 'sleep', 'echo'],
    files: [
      { name: 'bin/sf-session-test', mode: 0o755, body: sessionProgram },
      { name: 'position', mode: 0o644, body: '42\n' },
    ],
  });
  const id = await runContainer(t, image, ['sleep', '600']);
  const sessions = new CommandSessions(runtime);
  t.after(() => sessions.closeAll());
  const commands = new ReplicationCommands(runtime, 800, sessions);
  const withSession = recipe('/bin/sf-session-test', true);

  // 42 comes from the session; `docker exec … position` would print 7.
  assert.equal(await commands.position(id, withSession), '42');
  assert.equal(await commands.role(id, withSession), 'primary');
  const first = await sessions.of(id, ['/bin/sf-session-test', 'session']);
  assert.ok(first && !first.closed, 'one session stays open for the container');

  await assert.rejects(commands.run(id, withSession, 'promote'), (error: unknown) => {
    assert.ok(error instanceof ReplicationCommandError);
    assert.match(error.message, /promote failed: `\/bin\/sf-session-test promote` did not finish within 800 ms/);
    return true;
  });
  assert.equal(first.closed, true, 'a late answer must not be taken for the next request: the session is closed');
  assert.equal(await commands.position(id, withSession), '42', 'the next reading opens a new session');
  const second = await sessions.of(id, ['/bin/sf-session-test', 'session']);
  assert.ok(second && second !== first);

  // An unknown request answers 2 and leaves the session usable.
  const refused = await second.request('follow', 800);
  assert.equal(refused.exitCode, 2);
  assert.equal(await commands.position(id, withSession), '42');

  let ended = false;
  second.onClose(() => {
    ended = true;
  });
  await docker.getContainer(id).kill();
  await waitFor(() => ended, { description: 'the session closes with its container', timeoutMs: 10_000 });
  await assert.rejects(second.request('position', 800), CommandSessionError);
});

test('a program without a session (an older image) is run with docker exec', async (t) => {
  const image = await ensureReplicatedImage();
  // Its own service, with `position` 0 in /data: the program the test service runs.
  const id = await runContainer(t, image, ['/bin/sf-test', 'run'], ['SF_ROLE=primary']);
  await waitFor(async () => (await runtime.exec(id, ['cat', '/data/position'], 5000)).exitCode === 0, {
    description: 'the test service wrote its position',
  });
  const sessions = new CommandSessions(runtime);
  t.after(() => sessions.closeAll());
  const commands = new ReplicationCommands(runtime, 5000, sessions);
  const withSession = recipe('/bin/sf-test', true);
  assert.equal(await sessions.of(id, ['/bin/sf-test', 'session']), undefined, 'no greeting: no session');
  assert.equal(await commands.position(id, withSession), '0');
  assert.equal(await sessions.of(id, ['/bin/sf-test', 'session']), undefined, 'remembered, not asked again');
});
