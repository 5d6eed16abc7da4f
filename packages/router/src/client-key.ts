import { isIPv4, isIPv6 } from 'node:net';

/** Sockets whose peer address is already gone (closed before we looked) share this key. */
export const unknownClient = 'unknown';

/** The eight 16-bit groups of an address `isIPv6` accepted; `undefined` if it cannot be read. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address;
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups in disguise.
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number);
    text = `${dotted[1]}${(((a ?? 0) << 8) | (b ?? 0)).toString(16)}:${(((c ?? 0) << 8) | (d ?? 0)).toString(16)}`;
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parse(halves[0] ?? '');
  const rest = parse(halves[1] ?? '');
  const zeros = halves.length === 2 ? 8 - head.length - rest.length : 0;
  if (zeros < 0) return undefined;
  const groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g)) ? groups : undefined;
}

/**
 * The identity per-client limits count against. IPv4 (also IPv4-mapped IPv6): the address.
 * IPv6: its /64, since one host commonly owns a whole /64 and could otherwise open every
 * session from a fresh address.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return unknownClient;
  if (isIPv4(address)) return address;
  const bare = address.toLowerCase().split('%')[0] ?? '';
  if (!isIPv6(bare)) return address;
  const groups = ipv6Groups(bare);
  if (!groups) return bare;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}
