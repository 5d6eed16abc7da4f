import { isIP } from 'node:net';
import { InvalidInputError } from '@service-foundry/core';

/** What one route's HAProxy process is started with. */
export interface HaproxyRouteSettings {
  listenHost: string;
  port: number;
  target: { host: string; port: number };
  maxSessions: number;
  maxSessionsPerClient: number;
  /** Sessions the process can hold at all (its global `maxconn`); fixed for the process's life. */
  processMaxconn: number;
  connectTimeoutMs: number;
  /** How long new sessions wait for a target that refuses (RouterOptions.holdWhileRefusedMs); `0`: not at all. */
  holdWhileRefusedMs: number;
  /** `0`: no idle timeout. */
  idleTimeoutMs: number;
  /** The runtime API socket (level admin), in a directory only the router can enter. */
  socketPath: string;
}

/** The two server slots of the backend: a new epoch goes to the idle one (see haproxy-route.ts). */
export type ServerSlot = 's1' | 's2';

/** The prefix of the log lines the process writes for sessions that ended abnormally. */
export const sessionLogPrefix = 'sf-session ';

/**
 * While holding, each connection attempt gets this long, and a failed one is tried again
 * this much later (HAProxy's turn-around delay is `min(timeout connect, 1 s)`): a client
 * held while the primary moves reaches the new one at most this long after the switch.
 */
export const holdAttemptMs = 100;

/** Keys of the `refused` stick table: one counter per limit. */
export const refusedKeys = { routeLimit: 1, clientLimit: 2 } as const;

/**
 * Every value below ends up in a configuration file or a runtime API command: anything but
 * an IP address (which cannot hold a space, a newline or a `;`) is refused here, before a
 * record could inject a directive.
 */
function haproxyAddress(host: string, what: string): string {
  if (isIP(host) === 0)
    throw new InvalidInputError(
      `${what} must be an IP address (HAProxy serves TCP routes), got ${JSON.stringify(host)}`,
    );
  return host;
}

function port(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new InvalidInputError(`${what} must be a port, got ${value}`);
  return value;
}

/** `host:port` as HAProxy reads it: IPv6 addresses need no brackets there, only the last `:` counts. */
function endpoint(host: string, portNumber: number, what: string): string {
  return `${haproxyAddress(host, what)}:${port(portNumber, what)}`;
}

/**
 * The configuration of one TCP route's HAProxy process. The limits are process variables
 * (`proc.route_max`, `proc.client_max`) so a changed limit is applied through the runtime
 * API without a reload; each refusal is counted in the `refused` table before the reset.
 * `option dontlog-normal`: only sessions that end abnormally (timeouts, resets, shutdowns)
 * write a line, so the router learns of idle timeouts without a line per session.
 */
export function renderHaproxyRouteConfig(settings: HaproxyRouteSettings, active: ServerSlot): string {
  const idle = settings.idleTimeoutMs;
  const target = endpoint(settings.target.host, settings.target.port, 'route target');
  const spare: ServerSlot = active === 's1' ? 's2' : 's1';
  return [
    'global',
    `  maxconn ${settings.processMaxconn}`,
    '  nbthread 1',
    // A port held by anything else must fail to bind, not be shared through SO_REUSEPORT.
    '  noreuseport',
    `  stats socket ${settings.socketPath} mode 600 level admin`,
    '  log stdout format raw local0 info',
    `  set-var proc.route_max int(${settings.maxSessions})`,
    `  set-var proc.client_max int(${settings.maxSessionsPerClient})`,
    'defaults',
    '  mode tcp',
    '  log global',
    '  option dontlog-normal',
    `  log-format "${sessionLogPrefix}%ts"`,
    ...connectRules(settings),
    ...(idle > 0 ? [`  timeout client ${idle}ms`, `  timeout server ${idle}ms`, `  timeout tunnel ${idle}ms`] : []),
    'backend refused',
    '  stick-table type integer size 4 store gpc0',
    'backend clients',
    // IPv4 clients count by address, IPv6 clients by their /64 (docs/router.md).
    `  stick-table type ipv6 size ${settings.processMaxconn * 2} expire 60s store conn_cur`,
    'frontend route',
    `  bind ${endpoint(settings.listenHost, settings.port, 'listenHost')}`,
    '  acl route_full fe_conn,sub(proc.route_max) gt 0',
    `  tcp-request connection track-sc1 int(${refusedKeys.routeLimit}) table refused if route_full`,
    '  tcp-request connection sc-inc-gpc0(1) if route_full',
    '  tcp-request connection reject if route_full',
    '  tcp-request connection track-sc0 src,ipmask(32,64) table clients',
    '  acl client_full sc0_conn_cur,sub(proc.client_max) gt 0',
    `  tcp-request connection track-sc1 int(${refusedKeys.clientLimit}) table refused if client_full`,
    '  tcp-request connection sc-inc-gpc0(1) if client_full',
    '  tcp-request connection reject if client_full',
    '  default_backend target',
    'backend target',
    '  balance first',
    `  server ${active} ${target}`,
    `  server ${spare} ${target} disabled`,
    '',
  ].join('\n');
}

/**
 * The hold, in HAProxy's terms: a failed attempt is retried every {@link holdAttemptMs}
 * for `holdWhileRefusedMs`, and each retry is dispatched again (`option redispatch 1`) to
 * whichever server slot is in service then, so a client held while the old primary
 * refuses goes to the new one as soon as the route switches. Without a hold, one attempt
 * of `connectTimeoutMs`.
 */
function connectRules(settings: HaproxyRouteSettings): string[] {
  const hold = settings.holdWhileRefusedMs;
  if (hold === 0) return [`  timeout connect ${settings.connectTimeoutMs}ms`, '  retries 0'];
  return [
    `  timeout connect ${Math.min(holdAttemptMs, settings.connectTimeoutMs)}ms`,
    `  retries ${Math.max(1, Math.ceil(hold / holdAttemptMs))}`,
    '  option redispatch 1',
  ];
}

/** The runtime API commands that move new sessions (and held ones, at their next attempt) to `target`. */
export function switchCommands(target: { host: string; port: number }, from: ServerSlot, to: ServerSlot): string {
  const host = haproxyAddress(target.host, 'route target');
  return [
    `set server target/${to} addr ${host} port ${port(target.port, 'route target')}`,
    `set server target/${to} state ready`,
    `set server target/${from} state maint`,
  ].join('; ');
}

/** The runtime API command that cuts every session of a server slot: those of an older epoch. */
export function cutCommand(slot: ServerSlot): string {
  return `shutdown sessions server target/${slot}`;
}

/** The runtime API commands that change the limits of new sessions. */
export function limitCommands(maxSessions: number, maxSessionsPerClient: number): string {
  for (const value of [maxSessions, maxSessionsPerClient]) {
    if (!Number.isInteger(value) || value < 1)
      throw new InvalidInputError(`a limit must be a positive integer, got ${value}`);
  }
  return [
    'experimental-mode on',
    `set var proc.route_max int(${maxSessions})`,
    `set var proc.client_max int(${maxSessionsPerClient})`,
  ].join('; ');
}
