import { connect } from 'node:net';

/** How long one runtime API exchange may take before it counts as failed. */
const exchangeTimeoutMs = 2000;

/**
 * One exchange with an HAProxy runtime API socket (non-interactive mode: the command line
 * in, the answer until HAProxy closes the connection). Several commands go in one line,
 * separated by `; `, and run in that order.
 */
export function haproxyCommand(socketPath: string, command: string): Promise<string> {
  if (/[\r\n]/.test(command)) return Promise.reject(new Error('a runtime API command is one line'));
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`HAProxy runtime API did not answer within ${exchangeTimeoutMs} ms`));
    }, exchangeTimeoutMs);
    socket.on('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/**
 * Lines of an answer that report a failure. HAProxy answers a successful command with
 * nothing or an informational line; these are the ones it writes when it refused one.
 */
export function commandFailures(answer: string): string[] {
  const failure = /(unknown|not found|no such|invalid|can't|cannot|require|restricted|error|expects)/i;
  return answer
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && failure.test(line));
}

/**
 * The counters of one proxy in a `show stat <proxy> <type> -1 typed` answer, by field name
 * (`scur`, `stot`, `bin`, `bout`, `econ`, …): `kind` `F` for its frontend, `B` its backend.
 */
export function statFields(answer: string, kind: 'F' | 'B'): Map<string, number> {
  const fields = new Map<string, number>();
  for (const match of answer.matchAll(/^([FB])\.\d+\.0\.\d+\.(\w+)\.\d+:\w+:[us]\d+:(\d+)$/gm)) {
    if (match[1] === kind) fields.set(match[2] as string, Number(match[3]));
  }
  return fields;
}

/** `key → gpc0` of a `show table <name>` answer. */
export function tableCounters(answer: string): Map<number, number> {
  const counters = new Map<number, number>();
  for (const match of answer.matchAll(/ key=(\d+) .*?gpc0=(\d+)/g)) counters.set(Number(match[1]), Number(match[2]));
  return counters;
}
