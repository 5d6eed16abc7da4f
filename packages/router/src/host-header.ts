/**
 * The route key of a Host header: the host name without port, lower-cased, without a
 * trailing dot. `undefined` when the header is missing or malformed.
 */
export function hostnameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let host = header.trim();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    host = host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) {
      if (!/^\d*$/.test(host.slice(colon + 1))) return undefined;
      host = host.slice(0, colon);
    }
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host ? host.toLowerCase() : undefined;
}
