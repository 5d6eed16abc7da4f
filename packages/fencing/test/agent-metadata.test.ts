import assert from 'node:assert/strict';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { suiteTempDir } from '@service-foundry/test-support';
import {
  FenceAgentMetadataError,
  FenceAgentRefusedError,
  FenceAgents,
  type FenceOptionValue,
  parseAgentMetadata,
} from '../src/index.js';
import { testAgents, writeAgent } from './helpers.js';

describe('agent metadata: options are checked against what the agent declares', () => {
  const dir = suiteTempDir('sf-fencing-metadata');
  let agents: FenceAgents;

  before(async () => {
    agents = testAgents(dir.path);
  });

  /** The problems of one device, as the operator API reports them. */
  const problems = (agent: string, options: Record<string, FenceOptionValue>) =>
    agents.configProblems({
      levels: [{ devices: [{ agent, options, timeoutSeconds: 30, retries: 1, confirm: 'status' }] }],
    });
  const at = (option: string) => `/levels/0/devices/0/options/${option}: `;

  it('reads the parameters of Debian’s agents: types, choices, aliases', async () => {
    const ipmilan = await agents.metadata(await agents.resolve('fence_ipmilan'));
    assert.equal(ipmilan.agent, 'fence_ipmilan');
    const byName = new Map(ipmilan.parameters.map((p) => [p.name, p]));
    assert.equal(byName.get('ipport')?.type, 'integer');
    assert.equal(byName.get('lanplus')?.type, 'boolean');
    assert.deepEqual(byName.get('privlvl')?.choices, ['callback', 'user', 'operator', 'administrator']);
    assert.equal(byName.get('login')?.deprecated, true);
    assert.deepEqual(byName.get('login')?.longOptions, ['username']);
    const dummy = await agents.metadata(await agents.resolve('fence_dummy'));
    assert.deepEqual(
      dummy.parameters.find((p) => p.name === 'status_file'),
      { name: 'status_file', type: 'string', choices: [], longOptions: ['status-file'], deprecated: false },
    );
  });

  it('fence_dummy: known options pass; unknown names, wrong types and refused options do not', async () => {
    assert.deepEqual(await problems('fence_dummy', { status_file: '/var/lib/x/power', type: 'file', delay: 0 }), []);
    assert.deepEqual(await problems('fence_dummy', { 'status-file': '/var/lib/x/power', verbose: true }), []);
    assert.deepEqual(await problems('fence_dummy', { password: 's3cret' }), [
      `${at('password')}fence_dummy has no option password (see its action=metadata)`,
    ]);
    assert.deepEqual(await problems('fence_dummy', { verbose_level: 'lots', power_timeout: '1.5', quiet: 'maybe' }), [
      `${at('verbose_level')}must be an integer`,
      `${at('power_timeout')}must be a whole number of seconds`,
      `${at('quiet')}must be a boolean (true or false)`,
    ]);
    // Written as root where the option says; `debug` is its deprecated alias.
    for (const option of ['debug_file', 'debug', 'debug-file']) {
      const [problem] = await problems('fence_dummy', { [option]: '/etc/cron.d/evil' });
      assert.match(problem ?? '', /refused \(matches debug_file\)/, option);
    }
    // `off` with help=1 prints the help and exits 0: a "success" that fenced nothing.
    assert.match((await problems('fence_dummy', { help: true }))[0] ?? '', /refused \(matches help\)/);
  });

  it('fence_ipmilan: credentials and typed options pass; command-running options and argument injection do not', async () => {
    const good = {
      ip: '10.0.0.21',
      username: 'admin',
      password: 'a pass with spaces and "quotes"',
      lanplus: true,
      ipport: 623,
      privlvl: 'OPERATOR',
      method: 'cycle',
    };
    assert.deepEqual(await problems('fence_ipmilan', good), []);
    assert.deepEqual(await problems('fence_ipmilan', { ipaddr: '10.0.0.21', login: 'admin', passwd: 'x' }), []);
    assert.deepEqual(await problems('fence_ipmilan', { ipp: '10.0.0.21', ipport: 'http', lanplus: 'sometimes' }), [
      `${at('ipp')}fence_ipmilan has no option ipp (see its action=metadata)`,
      `${at('ipport')}must be an integer`,
      `${at('lanplus')}must be a boolean (true or false)`,
    ]);
    assert.deepEqual(await problems('fence_ipmilan', { privlvl: 'root' }), [
      `${at('privlvl')}must be one of callback, user, operator, administrator`,
    ]);
    for (const [option, rule] of [
      ['ipmitool_path', '*_path'],
      ['sudo_path', '*_path'],
      ['password_script', '*_script'],
      ['password-script', '*_script'],
      ['passwd_script', '*_script'],
    ]) {
      const [problem] = await problems('fence_ipmilan', { [option as string]: '/bin/sh' });
      assert.equal(
        problem,
        `${at(option as string)}refused (matches ${rule}): it makes the agent run a program or write a file it names, or exit without fencing`,
      );
    }
    // ipmitool's command line is built as a string and split: a space would add arguments.
    assert.deepEqual(await problems('fence_ipmilan', { ip: '10.0.0.1 -oProxyCommand=id', username: '-x' }), [
      `${at('ip')}must not contain spaces`,
      `${at('username')}must not start with "-"`,
    ]);
    assert.deepEqual(await problems('fence_ipmilan', { ip: "10.0.0.1'" }), [
      `${at('ip')}must not contain quotes or backslashes`,
    ]);
  });

  it('fence_docker: select, integer and string options; its gnutls-cli path is refused', async () => {
    const good = { ip: '127.0.0.1', ipport: 2376, plug: 'abc123', ssl_insecure: true, api_version: '1.41' };
    assert.deepEqual(await problems('fence_docker', { ...good, method: 'onoff' }), []);
    assert.deepEqual(await problems('fence_docker', { ...good, method: 'reboot', port: 'abc' }), [
      `${at('method')}must be one of onoff, cycle`,
    ]);
    assert.match(
      (await problems('fence_docker', { gnutlscli_path: '/tmp/x' }))[0] ?? '',
      /refused \(matches \*_path\)/,
    );
    assert.match((await problems('fence_docker', { ssh_options: 'x' }))[0] ?? '', /has no option ssh_options/);
  });

  it('fence_sf_sim declares exactly what it reads', async () => {
    const options = { plug: 'node-1', cluster: 'sf-1', pid_file: '/run/sf/agent-node-1.pid', power_timeout: 10 };
    assert.deepEqual(await problems('fence_sf_sim', options), []);
    assert.deepEqual(
      await problems('fence_sf_sim', { port: 'node-1', cluster: 'sf-1', docker_socket: '/run/d.sock' }),
      [],
    );
    assert.deepEqual(await problems('fence_sf_sim', { power_timeout: 'soon', verbose: true }), [
      `${at('power_timeout')}must be a whole number of seconds`,
      `${at('verbose')}fence_sf_sim has no option verbose (see its action=metadata)`,
    ]);
  });

  it('asks an agent once per version of its file', async () => {
    const runs = join(dir.path, 'metadata-runs');
    await writeFile(runs, '');
    const agent = await writeAgent(dir.path, 'counted', 'exit 0', { ip: 'string' });
    // Count metadata runs: the script's first line after the shebang appends to the file.
    const script = await readFile(agent, 'utf8');
    await writeFile(agent, script.replace('#!/bin/sh\n', `#!/bin/sh\necho run >> ${runs}\n`));
    const count = async () => (await readFile(runs, 'utf8')).split('\n').filter(Boolean).length;
    await agents.prepare({ agent: 'fence_counted', options: { ip: '10.0.0.1' } });
    await agents.prepare({ agent: 'fence_counted', options: { ip: '10.0.0.2' } });
    assert.equal(await count(), 1);
    // Rewritten (a new mtime): asked again.
    const later = new Date(Date.now() + 60_000);
    await utimes(agent, later, later);
    await agents.prepare({ agent: 'fence_counted', options: {} });
    assert.equal(await count(), 2);
  });

  it('refuses an agent that cannot describe itself, and says why', async () => {
    await writeFile(join(dir.path, 'fence_mute'), '#!/bin/sh\necho "no metadata here" >&2\nexit 1\n', { mode: 0o755 });
    await writeFile(join(dir.path, 'fence_garbage'), '#!/bin/sh\necho "<resource-agent name=\\"x\\"><oops"\n', {
      mode: 0o755,
    });
    await writeFile(join(dir.path, 'fence_slow'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    for (const [agent, reason] of [
      ['fence_mute', /gave no usable metadata \(action=metadata\): exit code 1: no metadata here/],
      ['fence_garbage', /gave no usable metadata \(action=metadata\): malformed tag at offset \d+/],
    ] as const) {
      await assert.rejects(agents.prepare({ agent, options: {} }), (error: unknown) => {
        assert.ok(error instanceof FenceAgentMetadataError);
        assert.match(error.message, reason);
        return true;
      });
      const [problem] = await problems(agent, {});
      assert.match(problem ?? '', reason);
    }
    const impatient = new FenceAgents({ ...agents.options, metadataTimeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(impatient.prepare({ agent: 'fence_slow', options: {} }), /no answer within 300 ms/);
    assert.ok(Date.now() - started < 5000, 'a hanging agent is killed at the deadline');
    assert.match((await problems('sh', {}))[0] ?? '', /^\/levels\/0\/devices\/0\/agent: fence agent "sh" refused/);
    await assert.rejects(agents.prepare({ agent: 'fence_dummy', options: { nope: 1 } }), FenceAgentRefusedError);
  });

  it('parses the ClusterLabs format strictly: comments, entities, self-closing parameters', () => {
    const xml = [
      '<?xml version="1.0" ?>',
      '<!-- generated -->',
      '<resource-agent name="fence_x" shortdesc="a &amp; b">',
      '<parameters>',
      '\t<parameter name="ip" deprecated="0"><getopt mixed="-a, --ip=[ip]" /><content type="string" /></parameter>',
      '\t<parameter name="mode"><content type="select"><option value="a&lt;b" /><option value=\'c\' /></content></parameter>',
      '\t<parameter name="bare" />',
      '</parameters>',
      '</resource-agent>',
    ].join('\n');
    const metadata = parseAgentMetadata(xml, 'test');
    assert.deepEqual(
      metadata.parameters.map((p) => [p.name, p.type, p.choices, p.longOptions]),
      [
        ['ip', 'string', [], ['ip']],
        ['mode', 'select', ['a<b', 'c'], []],
        ['bare', 'string', [], []],
      ],
    );
    for (const [bad, why] of [
      ['<resource-agent name="x"><parameters></resource-agent>', /unexpected <\/resource-agent>/],
      ['<resource-agent name="x">', /<resource-agent> is never closed/],
      ['<resource-agent name="x"></resource-agent>', /no <parameters> element/],
      ['<parameters></parameters>', /no <resource-agent> element/],
      ['<resource-agent name="x"><parameters><parameter /></parameters></resource-agent>', /without a name/],
      ['<resource-agent name="x"><!-- open', /unterminated <!--/],
    ] as const) {
      assert.throws(() => parseAgentMetadata(bad, 'test'), why, bad);
    }
  });
});
