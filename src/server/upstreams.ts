import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** A DNS server to forward to. */
export interface Upstream {
  address: string;
  port: number;
  family: 4 | 6;
  /** `address:port` (IPv6 in brackets): the name used in logs and metrics. */
  label: string;
}

/** Upstreams used together; `key` separates their answers in the cache. */
export interface UpstreamSet {
  key: string;
  servers: readonly Upstream[];
  /** Ask them from inside this network namespace (a sandbox's own servers); default the host's. */
  netns?: string;
}

export const upstreamSet = (servers: readonly Upstream[], netns?: string): UpstreamSet => ({
  key: servers.map((s) => s.label).join(',') + (netns === undefined ? '' : `@${netns}`),
  servers,
  ...(netns === undefined ? {} : { netns }),
});

/** Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; `what` names it in errors. */
export function parseHostPort(text: string, defaultPort: number, what: string): { address: string; port: number } {
  let address = text;
  let port = defaultPort;
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(text);
  if (bracketed !== null) {
    address = bracketed[1]!;
    if (bracketed[2] !== undefined) port = /^\d+$/.test(bracketed[2]) ? Number(bracketed[2]) : NaN;
  } else if (isIP(text) === 0 && text.split(':').length === 2) {
    const [a, p] = text.split(':') as [string, string];
    address = a;
    port = /^\d+$/.test(p) ? Number(p) : NaN;
  }
  if (isIP(address) === 0) throw new Error(`${what} ${JSON.stringify(text)}: ${JSON.stringify(address)} is not an IP address`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what} ${JSON.stringify(text)}: bad port`);
  return { address, port };
}

export function parseUpstream(text: string): Upstream {
  const { address, port } = parseHostPort(text, 53, 'upstream');
  if (port === 0) throw new Error(`upstream ${JSON.stringify(text)}: port 0`);
  const family = isIP(address) === 6 ? 6 : 4;
  return { address, port, family, label: family === 6 ? `[${address}]:${port}` : `${address}:${port}` };
}

/** The `nameserver` lines of a resolv.conf, as upstreams (zone ids are dropped). */
export function resolvConfUpstreams(path = '/etc/resolv.conf'): Upstream[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]?.replace(/%.*$/, ''))
    .filter((a): a is string => a !== undefined && isIP(a) !== 0)
    .map((a) => parseUpstream(isIP(a) === 6 ? `[${a}]:53` : a));
}
