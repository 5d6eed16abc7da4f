import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';

/**
 * A catalog program's `session` (sf-pg, sf-redis) over one `docker exec` with stdin, spoken
 * as the agent's command-session.ts speaks it.
 */
export async function openSession(docker: Dockerode, container: Dockerode.Container, argv: string[]) {
  const exec = await container.exec({ Cmd: argv, AttachStdin: true, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const errors: string[] = [];
  stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
  docker.modem.demuxStream(stream, stdout, stderr);
  stream.once('end', () => stdout.end());
  const lines = createInterface({ input: stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    assert.ok(!line.done, `the session ended; it said: ${errors.join('')}`);
    return line.value;
  };
  return {
    greeting: next,
    ask: async (request: string) => {
      stream.write(`${request}\n`);
      const answer = /^(\d+) (.*)$/.exec(await next());
      assert.ok(answer, 'an answer is "<code> <output>"');
      return { code: Number(answer[1]), output: answer[2] ?? '' };
    },
    errors,
    end: async () => {
      stream.end();
      await once(stdout, 'end');
    },
  };
}
