import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key an address is indexed under for PTR: dotted quad for IPv4, 32 lowercase nibbles for
 * IPv6 (so `fd00::2` and `fd00:0:0::2` are one key). Undefined for anything else.
 */
export function addressKey(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return undefined;
  const lower = ip.toLowerCase();
  const gap = lower.indexOf('::');
  const left = groups(gap < 0 ? lower : lower.slice(0, gap));
  const right = gap < 0 ? '' : groups(lower.slice(gap + 2));
  return left + '0'.repeat(32 - left.length - right.length) + right;
}

/** Colon-separated groups as 4 nibbles each; a trailing dotted quad is two groups. */
function groups(part: string): string {
  if (part === '') return '';
  let out = '';
  for (const g of part.split(':')) {
    if (g.includes('.')) {
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      out += (((a << 24) | (b << 16) | (c << 8) | d) >>> 0).toString(16).padStart(8, '0');
    } else {
      out += g.length === 4 ? g : '000'.slice(g.length - 1) + g;
    }
  }
  return out;
}

/** An asker's address as its family's own: a dual-stack socket reports IPv4 askers as ::ffff:a.b.c.d. */
export const unmapped = (ip: string): string => (ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip);

/** The address a reverse name asks about, as an addressKey; undefined when it is not one. */
export function reverseNameKey(name: string): string | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) < 256)) return undefined;
    return parts.reverse().join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const parts = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    return parts.reverse().join('');
  }
  return undefined;
}
