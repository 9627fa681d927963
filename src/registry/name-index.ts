import { addressKey } from './address.js';
import type { EndpointSpec, NetworkSpec, ServiceSpec, TaskSpec } from './types.js';

export interface WeightedAddress {
  readonly ip: string;
  readonly weight: number;
}

/** One SRV answer: the target's name and the addresses that go in the additional section. */
export interface SrvTarget {
  readonly port: number;
  readonly weight: number;
  readonly target: string;
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

/**
 * Everything one name resolves to on one network. A name that exists has an entry even when
 * a family is empty, which is what makes NODATA (not NXDOMAIN) possible.
 */
export interface NameEntry {
  readonly v4: readonly WeightedAddress[];
  readonly v6: readonly WeightedAddress[];
  /** Set only for `_port._proto.service` names. */
  readonly srv: readonly SrvTarget[] | null;
}

/** The lookup tables of one network, rebuilt whenever something on it changes. */
export interface NetworkIndex {
  /** Container names, hostnames, aliases, short ids, each also as `name.network`. */
  readonly endpoints: ReadonlyMap<string, NameEntry>;
  /** Service names, `tasks.<svc>`, task names and SRV names, each also as `name.network`. */
  readonly services: ReadonlyMap<string, NameEntry>;
  /** addressKey → PTR targets (`name.network`). */
  readonly ptr: ReadonlyMap<string, readonly string[]>;
}

class EntryBuilder {
  readonly v4: WeightedAddress[] = [];
  readonly v6: WeightedAddress[] = [];
  srv: SrvTarget[] | null = null;
}

class IndexBuilder {
  readonly endpoints = new Map<string, EntryBuilder>();
  readonly services = new Map<string, EntryBuilder>();
  readonly ptr = new Map<string, string[]>();

  constructor(readonly network: string) {}

  /** Adds addresses under `name` and `name.network`; an alias shared by two endpoints gets both. */
  add(table: Map<string, EntryBuilder>, name: string, v4: readonly WeightedAddress[], v6: readonly WeightedAddress[]): void {
    for (const key of [name.toLowerCase(), `${name}.${this.network}`.toLowerCase()]) {
      let entry = table.get(key);
      if (entry === undefined) table.set(key, (entry = new EntryBuilder()));
      for (const a of v4) if (!entry.v4.some((x) => x.ip === a.ip)) entry.v4.push(a);
      for (const a of v6) if (!entry.v6.some((x) => x.ip === a.ip)) entry.v6.push(a);
    }
  }

  addSrv(name: string, targets: SrvTarget[]): void {
    for (const key of [name.toLowerCase(), `${name}.${this.network}`.toLowerCase()]) {
      const entry = new EntryBuilder();
      entry.srv = targets;
      this.services.set(key, entry);
    }
  }

  addPtr(ip: string | undefined, name: string): void {
    const key = ip === undefined ? undefined : addressKey(ip);
    if (key === undefined) return;
    const target = `${name}.${this.network}`.toLowerCase();
    const list = this.ptr.get(key);
    if (list === undefined) this.ptr.set(key, [target]);
    else if (!list.includes(target)) list.push(target);
  }
}

const one = (ip: string | undefined, weight = 1): WeightedAddress[] => (ip === undefined ? [] : [{ ip, weight }]);

/** A task takes part in answers only while healthy, not draining and with a weight above 0. */
export const taskServes = (t: TaskSpec): boolean => t.healthy !== false && t.draining !== true && (t.weight ?? 1) > 0;
export const taskName = (svc: ServiceSpec, t: TaskSpec): string => t.name ?? `${svc.name}.${t.id.slice(0, 12)}`;

function addEndpoint(b: IndexBuilder, ep: EndpointSpec): void {
  const att = ep.networks[b.network];
  if (att === undefined) return;
  const v4 = one(att.ipv4);
  const v6 = one(att.ipv6);
  const names = new Set([ep.name, ...(ep.hostname === undefined ? [] : [ep.hostname]), ...(att.aliases ?? []), ep.id.slice(0, 12)]);
  for (const n of names) b.add(b.endpoints, n, v4, v6);
  b.addPtr(att.ipv4, ep.name);
  b.addPtr(att.ipv6, ep.name);
}

function addService(b: IndexBuilder, svc: ServiceSpec): void {
  const live = svc.tasks.filter(taskServes);
  const taskV4 = live.flatMap((t) => one(t.ipv4, t.weight ?? 1));
  const taskV6 = live.flatMap((t) => one(t.ipv6, t.weight ?? 1));
  if (svc.mode === 'vip') {
    b.add(b.services, svc.name, one(svc.vip), one(svc.vip6));
    b.addPtr(svc.vip, svc.name);
    b.addPtr(svc.vip6, svc.name);
  } else {
    b.add(b.services, svc.name, taskV4, taskV6);
  }
  b.add(b.services, `tasks.${svc.name}`, taskV4, taskV6);
  for (const t of live) {
    b.add(b.services, taskName(svc, t), one(t.ipv4), one(t.ipv6));
    b.addPtr(t.ipv4, taskName(svc, t));
    b.addPtr(t.ipv6, taskName(svc, t));
  }
  for (const port of svc.ports ?? []) {
    const targets: SrvTarget[] =
      svc.mode === 'vip'
        ? [{ port: port.port, weight: 1, target: `${svc.name}.${b.network}`, v4: one(svc.vip).map((a) => a.ip), v6: one(svc.vip6).map((a) => a.ip) }]
        : live.map((t) => ({
            port: port.port,
            weight: t.weight ?? 1,
            target: `${taskName(svc, t)}.${b.network}`,
            v4: one(t.ipv4).map((a) => a.ip),
            v6: one(t.ipv6).map((a) => a.ip),
          }));
    b.addSrv(`_${port.name}._${port.protocol}.${svc.name}`, targets);
  }
}

/** Builds the index of one network from the endpoints and services on it. */
export function buildNetworkIndex(
  net: NetworkSpec,
  endpoints: Iterable<EndpointSpec>,
  services: Iterable<ServiceSpec>,
): NetworkIndex {
  const b = new IndexBuilder(net.name);
  for (const ep of endpoints) addEndpoint(b, ep);
  for (const svc of services) addService(b, svc);
  return { endpoints: b.endpoints, services: b.services, ptr: b.ptr };
}

/** Merges the entries a name has on several networks (a sandbox on two networks sees both). */
export function mergeEntries(entries: readonly NameEntry[]): NameEntry {
  if (entries.length === 1) return entries[0]!;
  const merged = new EntryBuilder();
  for (const e of entries) {
    for (const a of e.v4) if (!merged.v4.some((x) => x.ip === a.ip)) merged.v4.push(a);
    for (const a of e.v6) if (!merged.v6.some((x) => x.ip === a.ip)) merged.v6.push(a);
    if (e.srv !== null) merged.srv = [...(merged.srv ?? []), ...e.srv];
  }
  return merged;
}
