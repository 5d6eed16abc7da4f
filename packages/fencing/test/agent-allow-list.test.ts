import assert from 'node:assert/strict';
import { chmod, chown, copyFile, mkdir, realpath, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { InvalidConfigError } from '@service-foundry/core';
import { suiteTempDir } from '@service-foundry/test-support';
import {
  compileFencingOptions,
  defaultAgentDirs,
  FenceAgentRefusedError,
  FenceAgents,
  projectAgentDir,
  resolveAgent,
  simAgentPath,
} from '../src/index.js';
import { writeAgent } from './helpers.js';

/** The refusal's reason, failing the test if `agent` was accepted. */
async function refusal(agent: string, dirs: readonly string[]): Promise<string> {
  try {
    const resolved = await resolveAgent(agent, dirs);
    assert.fail(`${agent} was accepted as ${resolved.path}`);
  } catch (error) {
    assert.ok(error instanceof FenceAgentRefusedError, String(error));
    assert.equal(error.code, 'SF_ERR_INVALID_INPUT');
    assert.equal(error.agent, agent);
    return error.reason;
  }
}

describe('fence agent allow-list: only fence_* executables in allow-listed directories run', () => {
  const allowed = suiteTempDir('sf-fencing-allowed');
  const outside = suiteTempDir('sf-fencing-outside');
  let dirs: string[];
  let good: string;

  before(async () => {
    dirs = [allowed.path];
    good = await writeAgent(allowed.path, 'good', 'exit 0');
  });

  it('resolves a fence_* name in an allowed directory, and its absolute path there', async () => {
    const byName = await resolveAgent('fence_good', dirs);
    assert.equal(byName.path, await realpath(good));
    assert.equal(byName.name, 'fence_good');
    assert.equal((await resolveAgent(good, dirs)).path, byName.path);
  });

  it('resolves Debian’s agents and the project’s fence_sf_sim with the default directories', async () => {
    assert.equal((await resolveAgent('fence_dummy', defaultAgentDirs())).path, '/usr/sbin/fence_dummy');
    assert.equal((await resolveAgent('fence_sf_sim', defaultAgentDirs())).path, await realpath(simAgentPath()));
    assert.equal((await resolveAgent(simAgentPath(), defaultAgentDirs())).name, 'fence_sf_sim');
  });

  it('takes only absolute, normalised directories; by default /usr/sbin and the package’s bin', () => {
    assert.deepEqual(compileFencingOptions({}).agentDirs, ['/usr/sbin', projectAgentDir()]);
    for (const agentDirs of [['usr/sbin'], ['/usr/sbin/../bin'], ['/usr//sbin'], ['/usr/sbin/'], ['/usr/./sbin']]) {
      assert.throws(() => compileFencingOptions({ agentDirs }), InvalidConfigError, agentDirs[0]);
      assert.throws(
        () => new FenceAgents({ agentDirs, refusedOptions: [], metadataTimeoutMs: 1000 }),
        InvalidConfigError,
        agentDirs[0],
      );
    }
  });

  it('refuses names that are not fence_*: shells, interpreters, anything else', async () => {
    for (const agent of ['sh', 'bash', 'python3', 'env', 'fence', 'fence_', 'fence_a;id', 'fence_a b', 'FENCE_A']) {
      assert.match(await refusal(agent, ['/usr/bin', '/bin', ...dirs]), /not a fence agent name/, agent);
    }
  });

  it('refuses /bin/sh and other absolute paths outside the allow-list or not named fence_*', async () => {
    assert.match(await refusal('/bin/sh', dirs), /sh is not named like a fence agent/);
    assert.match(await refusal('/bin/sh', ['/bin']), /sh is not named like a fence agent/);
    const elsewhere = await writeAgent(outside.path, 'elsewhere', 'exit 0');
    assert.match(await refusal(elsewhere, dirs), /is not an allowed agent directory/);
  });

  it('refuses ../ and any path not in normal form, even when it lands in an allowed directory', async () => {
    for (const agent of [
      `${allowed.path}/../${basename(allowed.path)}/fence_good`,
      `${allowed.path}/./fence_good`,
      `${allowed.path}//fence_good`,
      `${allowed.path}/fence_good/`,
    ]) {
      assert.match(await refusal(agent, dirs), /normal form/, agent);
    }
    assert.match(await refusal('../fence_good', dirs), /not a fence agent name/);
    assert.match(await refusal('sub/fence_good', dirs), /not a fence agent name/);
  });

  it('refuses a symlink from an allowed directory to /bin/sh, or to a program not named fence_*', async () => {
    await symlink('/bin/sh', join(allowed.path, 'fence_shell'));
    assert.match(await refusal('fence_shell', dirs), /resolves to \S+, outside the allowed agent directories/);
    // Even when /bin is allow-listed too: the real file is no fence agent.
    assert.match(await refusal('fence_shell', [...dirs, '/bin', '/usr/bin']), /not named like a fence agent/);

    await copyFile('/bin/sh', join(allowed.path, 'helper'));
    await symlink(join(allowed.path, 'helper'), join(allowed.path, 'fence_helper'));
    assert.match(await refusal('fence_helper', dirs), /resolves to \S+helper, which is not named like a fence agent/);
  });

  it('follows a symlink to another agent of the allow-list, and runs the real file', async () => {
    await symlink(good, join(allowed.path, 'fence_alias'));
    const alias = await resolveAgent('fence_alias', dirs);
    assert.equal(alias.path, await realpath(good));
    const linkedDir = join(outside.path, 'linked-dir');
    await symlink(allowed.path, linkedDir);
    assert.equal((await resolveAgent('fence_good', [linkedDir])).path, await realpath(good));
  });

  it('refuses a world-writable agent, one owned by someone else, and one not executable', async () => {
    const open = await writeAgent(allowed.path, 'open', 'exit 0');
    await chmod(open, 0o777);
    assert.match(await refusal('fence_open', dirs), /fence_open is writable by its group or by everyone \(mode 0777\)/);
    const group = await writeAgent(allowed.path, 'group', 'exit 0');
    await chmod(group, 0o775);
    assert.match(await refusal('fence_group', dirs), /writable by its group or by everyone \(mode 0775\)/);
    const foreign = await writeAgent(allowed.path, 'foreign', 'exit 0');
    await chown(foreign, 65534, 65534);
    assert.match(await refusal('fence_foreign', dirs), /owned by uid 65534, not by root/);
    const plain = await writeAgent(allowed.path, 'plain', 'exit 0');
    await chmod(plain, 0o644);
    assert.match(await refusal('fence_plain', dirs), /is not executable \(mode 0644\)/);
    await mkdir(join(allowed.path, 'fence_dir'));
    assert.match(await refusal('fence_dir', dirs), /is not a regular file/);
  });

  it('refuses an agent in a directory others can write, or under one they can rename', async () => {
    const shared = join(outside.path, 'shared');
    await mkdir(shared);
    await writeAgent(shared, 'shared', 'exit 0');
    await chmod(shared, 0o777);
    assert.match(
      await refusal('fence_shared', [shared]),
      /shared is writable by its group or by everyone \(mode 0777\)/,
    );
    // A world-writable ancestor without the sticky bit: anyone could swap the directory.
    const loose = join(outside.path, 'loose');
    await mkdir(join(loose, 'bin'), { recursive: true });
    await writeAgent(join(loose, 'bin'), 'deep', 'exit 0');
    await chmod(loose, 0o777);
    assert.match(await refusal('fence_deep', [join(loose, 'bin')]), /loose is writable by its group or by everyone/);
    // With the sticky bit (like /tmp, where these temp dirs live) it is accepted.
    await chmod(loose, 0o1777);
    assert.equal((await resolveAgent('fence_deep', [join(loose, 'bin')])).name, 'fence_deep');
  });

  it('never searches PATH: a fence_* found only on PATH outside the list is refused', async () => {
    await writeAgent(outside.path, 'onpath', 'exit 0');
    const savedPath = process.env.PATH;
    process.env.PATH = `${outside.path}:${savedPath ?? ''}`;
    try {
      assert.match(
        await refusal('fence_onpath', dirs),
        /no fence_onpath in the allowed agent directories \(\S+\); PATH is not searched/,
      );
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
