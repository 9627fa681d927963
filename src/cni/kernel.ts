import { statSync } from 'node:fs';
import { ipJson } from '../net/link/ip.js';
import type { CniRoute } from './types.js';

/** What the kernel shows of one interface: what ADD reports and CHECK compares. */
export interface InterfaceFacts {
  mac: string;
  up: boolean;
  /** `10.1.2.3/24`, IPv4 and global IPv6. */
  addresses: string[];
  /** Routes through a gateway on this interface (the connected subnet's route is implied by the address). */
  routes: CniRoute[];
}

interface IpLink {
  address?: string;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
}

/** Whether two paths are the same namespace (nsfs files of one namespace share device and inode). */
export function sameNamespace(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** `ifname` in named namespace `netns` (under /run/netns), or undefined when it is not there. */
export async function interfaceFacts(netns: string, ifname: string): Promise<InterfaceFacts | undefined> {
  const [link] = await ipJson<IpLink[]>(['addr', 'show', 'dev', ifname], netns).catch(() => []);
  if (link === undefined) return undefined;
  const routes: CniRoute[] = [];
  for (const [family, anyDst] of [['-4', '0.0.0.0/0'], ['-6', '::/0']] as const) {
    for (const r of await ipJson<IpRoute[]>([family, 'route', 'show', 'dev', ifname], netns)) {
      if (r.gateway !== undefined) routes.push({ dst: r.dst === 'default' ? anyDst : r.dst, gw: r.gateway });
    }
  }
  return {
    mac: link.address ?? '',
    up: (link.flags ?? []).includes('UP'),
    addresses: (link.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`),
    routes,
  };
}

/** The MAC of `ifname` in the host's namespace, or undefined when it is not there (macvlan's host end is not). */
export async function hostMac(ifname: string): Promise<string | undefined> {
  const [link] = await ipJson<IpLink[]>(['link', 'show', 'dev', ifname]).catch(() => []);
  return link?.address;
}
