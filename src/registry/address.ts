import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key an address is indexed under for PTR: dotted quad for IPv4, 32 lowercase nibbles for
 * IPv6 (so `fd00::2` and `fd00:0:0::2` are one key). Undefined for anything else.
 */
export function addressKey(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return undefined;
  const [head = '', tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const expand = (g: string[]): string[] =>
    g.flatMap((x) => {
      if (!x.includes('.')) return [x.padStart(4, '0')];
      const o = x.split('.').map(Number) as [number, number, number, number];
      return [((o[0] << 8) | o[1]).toString(16).padStart(4, '0'), ((o[2] << 8) | o[3]).toString(16).padStart(4, '0')];
    });
  const l = expand(left);
  const r = expand(right);
  const fill = tail === undefined ? [] : new Array<string>(8 - l.length - r.length).fill('0000');
  return [...l, ...fill, ...r].join('');
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
