import { createHash } from 'node:crypto';
import { BrokerError } from './errors.js';
import type { Target } from './target.js';

const apiVersion = '2.17';

/** Per-call settings of {@link BrokerClient.request}. */
export interface RequestOptions {
  /** Headers added to the login and API version. @default {} */
  headers?: Record<string, string>;
  /** How long to wait for the answer. @default 60000 */
  timeoutMs?: number;
}

/** Talks to the broker: OSB endpoints for the lifecycle, `/sf/v1` for operator views. */
export class BrokerClient {
  readonly #auth: string;

  constructor(readonly target: Readonly<Target>) {
    this.#auth = `Basic ${Buffer.from(`${target.username}:${target.password}`).toString('base64')}`;
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<{ status: number; body: T }> {
    // The other brokers are tried only when one refused the connection: the request never
    // reached it, so sending it elsewhere cannot do anything twice.
    const urls = [this.target.url, ...(this.target.fallbackUrls ?? [])];
    let res: Response | undefined;
    const refused: string[] = [];
    for (const url of urls) {
      try {
        res = await fetch(new URL(path, url), {
          method,
          headers: {
            authorization: this.#auth,
            'x-broker-api-version': apiVersion,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...options.headers,
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
        });
        break;
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause;
        if (cause?.code === 'ECONNREFUSED' && url !== urls.at(-1)) {
          refused.push(url);
          continue;
        }
        const also = refused.length ? ` (refused: ${refused.join(', ')})` : '';
        throw new BrokerError(
          0,
          'Unreachable',
          `cannot reach the broker at ${url}: ${(error as Error).message}${also}`,
        );
      }
    }
    if (!res) throw new BrokerError(0, 'Unreachable', `no broker to reach`);
    const text = await res.text();
    let parsed: unknown = {};
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { description: text };
      }
    }
    if (res.status >= 400) {
      const err = parsed as { error?: string; description?: string };
      throw new BrokerError(res.status, err.error, err.description ?? `${method} ${path}: HTTP ${res.status}`);
    }
    return { status: res.status, body: parsed as T };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path).then((r) => r.body);
  }
}

/** Binding ids for named keys are derived, so `sf service-key DB KEY` needs no lookup table. */
export function bindingIdFor(instanceId: string, keyName: string): string {
  const hex = createHash('sha256').update(`${instanceId}/${keyName}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
