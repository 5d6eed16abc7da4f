import assert from 'node:assert/strict';

/** The catalog's postgres service and its `small` plan (services-catalog/postgres). */
export const postgresServiceId = '4f6f0a8e-5d8a-4c43-9a57-2a4f1d3c6b01';
export const smallPlanId = 'b0c6c1d2-83a4-4a8e-8d2f-6e1f0c9a7b11';

export interface Login {
  user: string;
  password: string;
}

/** The platform's login (`osb` in the config): reaches /v2 only. */
export const osbLogin: Login = { user: 'cf-platform', password: 'correct-horse-battery' };
/** An operator (role `operator`): /sf/v1 and /v2, as `sf` uses them. */
export const operatorLogin: Login = { user: 'ops-alice', password: 'operator-horse-battery' };
/** A read-only operator (role `viewer`): GET/HEAD of /sf/v1 only. */
export const viewerLogin: Login = { user: 'ops-viewer', password: 'viewer-horse-battery' };
/** The default login of `call` on the operator API, and so the "by" of operator actions. */
export const username = operatorLogin.user;
export const password = operatorLogin.password;

/** The broker config's logins, for the three logins above. */
export const brokerLogins = {
  osb: { username: osbLogin.user, password: osbLogin.password },
  operators: [
    { username: operatorLogin.user, password: operatorLogin.password, role: 'operator' },
    { username: viewerLogin.user, password: viewerLogin.password, role: 'viewer' },
  ],
};

/** `Authorization` header value for a login. */
export function basicAuth(login: Login): string {
  return `Basic ${Buffer.from(`${login.user}:${login.password}`).toString('base64')}`;
}

export interface Reply {
  status: number;
  headers: Headers;
  /** The body parsed as JSON; undefined when empty or not JSON. */
  body: unknown;
  text: string;
}

export interface CallOptions {
  body?: unknown;
  /** Sent as is, instead of JSON-encoding `body`. */
  rawBody?: string;
  /** @default 'application/json' when there is a body; null: no Content-Type header */
  contentType?: string | null;
  /** @default osbLogin on /v2 paths, operatorLogin elsewhere; null: no Authorization header */
  auth?: Login | null;
  /** @default '2.17'; null: no X-Broker-API-Version header */
  apiVersion?: string | null;
  headers?: Record<string, string>;
}

/**
 * One HTTP call to a broker with the defaults of its caller: basic auth (the platform's
 * login on /v2, an operator's elsewhere), OSB 2.17, JSON.
 */
export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? (path.startsWith('/v2/') ? osbLogin : operatorLogin) : options.auth;
  if (auth) headers.authorization = basicAuth(auth);
  const version = options.apiVersion === undefined ? '2.17' : options.apiVersion;
  if (version !== null) headers['x-broker-api-version'] = version;
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (payload !== undefined && contentType !== null) headers['content-type'] = contentType;
  // Bytes, not a string: fetch would add `Content-Type: text/plain` to a string body.
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: payload === undefined ? null : Buffer.from(payload),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** A provision request body for the postgres `small` plan, with `extra` on top. */
export function provisionBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    service_id: postgresServiceId,
    plan_id: smallPlanId,
    organization_guid: 'org',
    space_guid: 'space',
    ...extra,
  };
}

/** Every error the broker sends has the OSB shape plus our stable code. */
export function assertOsbError(body: unknown, error: string): void {
  const b = body as Record<string, unknown>;
  assert.equal(b.error, error, JSON.stringify(body));
  assert.equal(typeof b.description, 'string');
  assert.ok((b.description as string).length > 0);
  assert.match(String(b.sf_code), /^SF_ERR_[A-Z_]+$/);
}
