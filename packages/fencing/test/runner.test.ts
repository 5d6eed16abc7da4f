import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { captureLog, silentLogger, suiteTempDir } from '@service-foundry/test-support';
import { encodeAgentOptions, powerOffAndConfirm, runDeviceAction } from '../src/index.js';
import {
  device,
  dummyDevice,
  powerFile,
  processRuns,
  readPower,
  runContext,
  testAgents,
  writeAgent,
} from './helpers.js';

describe('device runner: one device, the fence-agent protocol', () => {
  const dir = suiteTempDir('sf-fencing-runner');
  const log = silentLogger();
  /** The runner's context with the test's own agents allow-listed. */
  let context: (logger?: typeof log, node?: string) => ReturnType<typeof runContext>;

  before(async () => {
    const agents = testAgents(dir.path);
    context = (logger = log, node = 'node-1') => runContext(logger, node, agents);
  });

  it('reads fence_dummy status: exit 0 = ON, exit 2 = OFF', async () => {
    const on = await runDeviceAction(dummyDevice(await powerFile(dir.path, 's1', 'on')), 'status', context());
    assert.equal(on.ok, true);
    assert.equal(on.power, 'on');
    assert.equal(on.exitCode, 0);
    assert.match(on.stdout, /Status: ON/);
    const off = await runDeviceAction(dummyDevice(await powerFile(dir.path, 's2', 'off')), 'status', context());
    assert.equal(off.ok, true);
    assert.equal(off.power, 'off');
    assert.equal(off.exitCode, 2);
  });

  it('powers fence_dummy off and confirms it with status', async () => {
    const file = await powerFile(dir.path, 's3', 'on');
    const outcome = await powerOffAndConfirm(1, dummyDevice(file), context());
    assert.equal(outcome.ok, true, outcome.reason);
    assert.deepEqual(
      outcome.steps.map((s) => [s.action, s.exitCode]),
      [
        ['off', 0],
        ['status', 2],
      ],
    );
    assert.equal(await readPower(file), 'off');
  });

  it('reports a device that cannot power off, with the agent’s own words', async () => {
    // fence_dummy's "fail" type never reaches OFF; power_timeout bounds its wait.
    const failing = device({
      agent: 'fence_dummy',
      options: { type: 'fail', power_timeout: 1 },
      timeoutSeconds: 20,
      retries: 0,
    });
    const outcome = await powerOffAndConfirm(1, failing, context());
    assert.equal(outcome.ok, false);
    assert.equal(outcome.steps.length, 1);
    assert.equal(outcome.steps[0]?.exitCode, 1);
    assert.equal(outcome.reason, 'off failed: exit code 1: ERROR: Failed: Timed out waiting to power OFF');
  });

  it('does not count an off as fencing when status still says ON', async () => {
    const liar = await writeAgent(
      dir.path,
      'liar',
      `case "$first" in action=status) echo "Status: ON"; exit 0;; *) exit 0;; esac`,
    );
    const outcome = await powerOffAndConfirm(1, device({ agent: liar, retries: 0 }), context());
    assert.equal(outcome.ok, false);
    assert.equal(outcome.reason, 'off not confirmed: status still says ON');
    const trusted = await powerOffAndConfirm(1, device({ agent: liar, confirm: 'exit-code' }), context());
    assert.equal(trusted.ok, true);
    assert.equal(trusted.steps.length, 1);
  });

  it('kills the whole process group on timeout', async () => {
    const childPidFile = join(dir.path, 'sleeper.pid');
    const sleeper = await writeAgent(dir.path, 'sleeper', `sleep 30 & echo $! > ${childPidFile}\nwait`);
    const started = Date.now();
    const step = await runDeviceAction(device({ agent: sleeper, timeoutSeconds: 0.5, retries: 0 }), 'off', context());
    assert.ok(Date.now() - started < 5000, 'the runner returned soon after the timeout');
    assert.equal(step.ok, false);
    assert.equal(step.timedOut, true);
    assert.equal(step.reason, 'timed out after 0.5 s');
    const grandchild = Number((await readFile(childPidFile, 'utf8')).trim());
    await waitFor(async () => !(await processRuns(grandchild)), {
      description: 'the agent’s child to be killed',
      timeoutMs: 5000,
    });
  });

  it('retries a failing device up to its retries, then gives up', async () => {
    const counter = join(dir.path, 'attempts');
    // Fails twice, then succeeds.
    const flaky = await writeAgent(
      dir.path,
      'flaky',
      `echo x >> ${counter}\n[ "$(wc -l < ${counter})" -ge 3 ] && exit 0\necho "not yet" >&2\nexit 1`,
    );
    const tooFew = await runDeviceAction(device({ agent: flaky, retries: 1 }), 'off', context());
    assert.equal(tooFew.ok, false);
    assert.equal(tooFew.attempts, 2);
    assert.equal(tooFew.reason, 'exit code 1: not yet');
    const enough = await runDeviceAction(device({ agent: flaky, retries: 2 }), 'off', context());
    assert.equal(enough.ok, true);
    assert.equal(enough.attempts, 1, 'the third run overall succeeds at once');
  });

  it('sends the options on stdin, one per line, and nothing on the command line', async () => {
    const seen = join(dir.path, 'stdin.txt');
    const recorder = await writeAgent(dir.path, 'recorder', `{ echo "$first"; cat; } > ${seen}\necho "$#" >> ${seen}`, {
      ip: 'string',
      ipport: 'integer',
      ssl_insecure: 'boolean',
      plug: 'string',
    });
    const step = await runDeviceAction(
      device({ agent: recorder, options: { ip: '10.0.0.9', ipport: 2376, ssl_insecure: true, plug: 'node-1' } }),
      'off',
      context(log, 'node-1'),
    );
    assert.equal(step.ok, true);
    assert.deepEqual((await readFile(seen, 'utf8')).split('\n'), [
      'action=off',
      'nodename=node-1',
      'ip=10.0.0.9',
      'ipport=2376',
      'ssl_insecure=1',
      'plug=node-1',
      '0',
      '',
    ]);
    assert.throws(() => encodeAgentOptions({ password: 'a\naction=on' }, 'off', 'n'), /one line/);
  });

  it('never shows a secret: not in history output, options or logs', async () => {
    // A space is fine in a secret: agents quote secrets or send them in-band.
    const secret = 'hunter2 very-secret';
    const captured = captureLog();
    // An agent that echoes what it was sent, password included, as some do in warnings.
    const echo = await writeAgent(
      dir.path,
      'echo',
      'while IFS= read -r line; do echo "Parse error: Ignoring option \'$line\'" >&2; done\nexit 0',
      { ip: 'string', password: 'string' },
    );
    const outcome = await powerOffAndConfirm(
      1,
      device({ agent: echo, options: { ip: '10.0.0.9', password: secret }, confirm: 'exit-code' }),
      context(captured.log),
    );
    assert.equal(outcome.ok, true, outcome.reason);
    const off = outcome.steps[0];
    assert.match(off?.stderr ?? '', /Ignoring option 'password=\[redacted\]/);
    assert.equal(outcome.options.password, '[redacted]');
    assert.ok(captured.lines.length > 0);
    assert.ok(!JSON.stringify(outcome).includes(secret));
    assert.ok(!captured.text().includes(secret));
  });

  it('reports a missing agent as the device’s failure', async () => {
    const step = await runDeviceAction(device({ agent: 'fence_does_not_exist' }), 'off', context());
    assert.equal(step.ok, false);
    assert.equal(step.attempts, 0);
    assert.match(
      step.reason,
      /"fence_does_not_exist" refused: no fence_does_not_exist in the allowed agent directories/,
    );
  });

  it('keeps output short', async () => {
    const chatty = await writeAgent(
      dir.path,
      'chatty',
      'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done',
    );
    const step = await runDeviceAction(device({ agent: chatty }), 'monitor', {
      ...context(),
      maxOutputBytes: 100,
    });
    assert.equal(step.ok, true);
    assert.match(step.stdout, /^line 0\n.*…\[truncated \d+ bytes\]$/s);
    assert.ok(step.stdout.length < 140);
  });
});
