import { connect, type Socket } from 'node:net';

/** What one attempt found; `detail` says why when not ready (it ends up in a status). */
export interface WireProbeResult {
  ready: boolean;
  detail: string;
}

/** Services whose readiness the agent can check over their own protocol. */
export type WireProtocol = 'postgres';

/** SQLSTATE `cannot_connect_now`: starting up, shutting down, or in recovery without hot standby. */
const cannotConnectNow = '57P03';
/** More than any first message the check reads (an error with its fields). */
const maxAnswerBytes = 8 * 1024;

/**
 * A Postgres StartupMessage (protocol 3.0) for `user` and `database`. No password is ever
 * sent: the answer to this message alone tells whether the server accepts connections.
 */
function startupMessage(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8');
  const message = Buffer.alloc(8 + body.length);
  message.writeInt32BE(message.length, 0);
  message.writeInt32BE(196608, 4);
  body.copy(message, 8);
  return message;
}

/**
 * The verdict on the first message a Postgres server sent, or undefined while it is
 * incomplete. `pg_isready`'s rule (libpq's PQping): an authentication request or any error
 * but 57P03 means the server accepts connections.
 */
export function postgresVerdict(answer: Buffer): WireProbeResult | undefined {
  if (answer.length < 5) return undefined;
  const type = String.fromCharCode(answer[0] as number);
  const length = answer.readInt32BE(1);
  if (type === 'R' || type === 'v') return { ready: true, detail: 'accepts connections' };
  if (type !== 'E') return { ready: false, detail: `unexpected first message ${JSON.stringify(type)}` };
  if (length < 4 || length + 1 > maxAnswerBytes) return { ready: false, detail: 'malformed error message' };
  if (answer.length < length + 1) return undefined;
  // Fields: a type byte and a NUL-terminated string each, ended by a NUL byte.
  const fields = new Map<string, string>();
  let at = 5;
  while (at < length + 1 && answer[at] !== 0) {
    const end = answer.indexOf(0, at + 1);
    if (end < 0 || end > length) break;
    fields.set(String.fromCharCode(answer[at] as number), answer.toString('utf8', at + 1, end));
    at = end + 1;
  }
  const code = fields.get('C') ?? '';
  const message = (fields.get('M') ?? '').slice(0, 200);
  if (code === cannotConnectNow) return { ready: false, detail: `rejecting connections: ${message}` };
  return { ready: true, detail: `accepts connections (answered ${code} ${message})` };
}

/**
 * One readiness attempt over the service's own protocol, from this node to the container's
 * published port: a few ms where a `docker exec` of the catalog's command takes ~100 ms,
 * and a relocation's target waits for it. Never throws: a refused or silent port is "not ready".
 */
export function probeWire(
  protocol: WireProtocol,
  target: { host: string; port: number; user: string; database: string },
  timeoutMs: number,
): Promise<WireProbeResult> {
  return new Promise((resolve) => {
    let answer = Buffer.alloc(0);
    let socket: Socket | undefined;
    const finish = (result: WireProbeResult) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ready: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket = connect({ host: target.host, port: target.port, noDelay: true }, () => {
      socket?.write(startupMessage(target.user, target.database));
    });
    socket.on('data', (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      const verdict = protocol === 'postgres' ? postgresVerdict(answer) : undefined;
      if (verdict) finish(verdict);
      else if (answer.length >= maxAnswerBytes) finish({ ready: false, detail: 'answer too long' });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish({ ready: false, detail: error.code ?? error.message }));
    socket.on('close', () => finish({ ready: false, detail: 'connection closed before an answer' }));
  });
}
