import { inNetns } from '../../netns/netns.js';
import { nftApply } from '../nft/apply.js';
import type { IpvsDestination, IpvsService } from './ipvs.js';
import { IpvsClient } from './ipvs-socket.js';
import { renderVipTable, type VipService } from './nft-vip.js';

/** Programs the VIPs a sandbox sees, inside its namespace; `apply` is idempotent and whole. */
export interface VipBackend {
  readonly name: 'nft' | 'ipvs';
  apply(netns: string, services: readonly VipService[]): Promise<void>;
}

export const nftVipBackend: VipBackend = {
  name: 'nft',
  apply: (netns, services) => nftApply(renderVipTable('tsnet_lb', services), `${netns}`),
};

/** What the IPVS backend needs of a client (IpvsClient, or a recording fake in tests). */
export interface IpvsLike {
  services(): IpvsService[];
  destinations(s: IpvsService): IpvsDestination[];
  newService(s: IpvsService): void;
  delService(s: IpvsService): void;
  setDestination(s: IpvsService, d: IpvsDestination, exists: boolean): void;
  delDestination(s: IpvsService, d: IpvsDestination): void;
  close(): void;
}

const key = (s: { address?: string; port?: number; protocol?: string }): string => `${s.protocol}/${s.address}:${s.port}`;

/** The IPVS services and destinations `services` ask for (weighted round robin; weight 0 drains). */
export function desiredIpvs(services: readonly VipService[]): { service: IpvsService; dests: IpvsDestination[] }[] {
  return services.flatMap((s) =>
    s.ports.map((p) => ({
      service: { family: 4 as const, protocol: p.protocol, address: s.vip, port: p.port, scheduler: 'wrr' },
      dests: s.backends.map((b) => ({ address: b.ip, port: p.port, weight: b.weight })),
    })),
  );
}

/** Brings one namespace's IPVS table to `services`: adds, reweights and removes the difference. */
export function syncIpvs(client: IpvsLike, services: readonly VipService[]): void {
  const want = desiredIpvs(services);
  const have = new Map(client.services().map((s) => [key(s), s]));
  for (const { service, dests } of want) {
    const current = have.get(key(service));
    have.delete(key(service));
    if (current === undefined) client.newService(service);
    const present = new Map((current === undefined ? [] : client.destinations(service)).map((d) => [`${d.address}:${d.port}`, d]));
    for (const d of dests) {
      const old = present.get(`${d.address}:${d.port}`);
      present.delete(`${d.address}:${d.port}`);
      if (old === undefined || old.weight !== d.weight) client.setDestination(service, d, old !== undefined);
    }
    for (const gone of present.values()) client.delDestination(service, gone);
  }
  for (const stale of have.values()) client.delService(stale);
}

/** IPVS inside each sandbox's namespace (its netlink socket is opened there). */
export const ipvsVipBackend = (open: () => IpvsLike = () => IpvsClient.open()): VipBackend => ({
  name: 'ipvs',
  async apply(netns, services) {
    const client = inNetns(`/run/netns/${netns}`, open);
    try {
      syncIpvs(client, services);
    } finally {
      client.close();
    }
  },
});
