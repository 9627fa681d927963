import { Cidr } from '../ipam/cidr.js';
import type { HostSubnet } from '../ipam/ipam.js';
import { ipJson } from './ip.js';

/** An interface in the host namespace. */
export interface HostLink {
  name: string;
  /** Made by this daemon (its owner alias is on it). */
  owned: boolean;
  loopback: boolean;
}

/** What a new network is checked against, read from the kernel just before it is planned. */
export interface HostFacts {
  links: ReadonlyMap<string, HostLink>;
  subnets: readonly HostSubnet[];
}

type IpLink = { ifname: string; ifalias?: string; link_type?: string };
type IpAddr = { ifname: string; addr_info?: { local?: string; prefixlen?: number }[] };
type IpRoute = { dst?: string; dev?: string };

const prefix = (text: string, dev: string): HostSubnet[] => {
  try {
    return [{ subnet: Cidr.parse(text).toString(), dev }];
  } catch {
    return []; // a route type iproute2 prints without a plain destination
  }
};

/** The host's interfaces, and the subnets of its addresses and (non-default) main-table routes. */
export async function hostFacts(owner: string): Promise<HostFacts> {
  const [links, addrs, routes4, routes6] = await Promise.all([
    ipJson<IpLink[]>(['link', 'show']),
    ipJson<IpAddr[]>(['addr', 'show']),
    ipJson<IpRoute[]>(['-4', 'route', 'show', 'table', 'main']),
    ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', 'main']),
  ]);
  const subnets = [
    ...addrs.flatMap((a) => (a.addr_info ?? []).flatMap((i) => (i.local === undefined ? [] : prefix(`${i.local}/${i.prefixlen ?? ''}`, a.ifname)))),
    ...[...routes4, ...routes6].flatMap((r) => {
      if (r.dst === undefined || r.dst === 'default') return [];
      const dst = r.dst.includes('/') ? r.dst : `${r.dst}/${r.dst.includes(':') ? 128 : 32}`;
      return prefix(dst, r.dev ?? '?');
    }),
  ];
  return {
    links: new Map(links.map((l) => [l.ifname, { name: l.ifname, owned: l.ifalias === owner, loopback: l.link_type === 'loopback' }])),
    subnets,
  };
}
