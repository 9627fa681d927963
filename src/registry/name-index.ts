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

/** The service tables of one network, rebuilt whenever a service on it changes. */
export interface ServiceIndex {
  /** Service names, `tasks.<svc>`, task names and SRV names, each also as `name.network`. */
  readonly services: ReadonlyMap<string, NameEntry>;
  /** addressKey → PTR targets (`name.network`) of VIPs and tasks. */
  readonly ptr: ReadonlyMap<string, readonly string[]>;
}

class EntryBuilder {
  readonly v4: WeightedAddress[] = [];
  readonly v6: WeightedAddress[] = [];
  srv: SrvTarget[] | null = null;
}

class IndexBuilder {
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

/** Builds the service tables of one network from the services on it. */
export function buildServiceIndex(net: NetworkSpec, services: Iterable<ServiceSpec>): ServiceIndex {
  const b = new IndexBuilder(net.name);
  for (const svc of services) addService(b, svc);
  return { services: b.services, ptr: b.ptr };
}

/** What one endpoint adds to its network's tables: the keys it answers under and the PTR keys it owns. */
interface Contribution {
  v4: readonly WeightedAddress[];
  v6: readonly WeightedAddress[];
  names: readonly string[];
  /** addressKey → its PTR target. */
  ptrs: ReadonlyMap<string, string>;
}

/**
 * The endpoint tables of one network (container names, hostnames, aliases, short ids, each also
 * as `name.network`; and their PTR targets), kept up to date one endpoint at a time: a change
 * costs what that endpoint names, whatever else is on the network. A name two endpoints share
 * (an alias) answers with both, in the order they got it.
 */
export class EndpointNames {
  readonly #entries = new Map<string, NameEntry>();
  readonly #ptr = new Map<string, readonly string[]>();
  /** Key → endpoint id → what it adds under that key. */
  readonly #byName = new Map<string, Map<string, Contribution>>();
  readonly #byPtr = new Map<string, Map<string, string>>();
  readonly #of = new Map<string, Contribution>();

  constructor(readonly network: string) {}

  get entries(): ReadonlyMap<string, NameEntry> {
    return this.#entries;
  }

  get ptr(): ReadonlyMap<string, readonly string[]> {
    return this.#ptr;
  }

  /** The tables of every endpoint of `eps` on this network, each name merged once. */
  static of(network: string, eps: Iterable<EndpointSpec>): EndpointNames {
    const names = new EndpointNames(network);
    names.#deferred = new Set();
    for (const ep of eps) names.set(ep);
    const keys = names.#deferred;
    names.#deferred = undefined;
    for (const key of keys) key.startsWith('ptr:') ? names.#refreshPtr(key.slice(4)) : names.#refreshName(key.slice(5));
    return names;
  }

  /** Keys to refresh at the end of a bulk build (`of`), instead of after each endpoint. */
  #deferred: Set<string> | undefined;

  /** Adds or replaces an endpoint; one not on this network is removed. */
  set(ep: EndpointSpec): void {
    this.remove(ep.id);
    const att = ep.networks[this.network];
    if (att === undefined) return;
    const names = new Set<string>();
    for (const n of [ep.name, ...(ep.hostname === undefined ? [] : [ep.hostname]), ...(att.aliases ?? []), ep.id.slice(0, 12)]) {
      names.add(n.toLowerCase());
      names.add(`${n}.${this.network}`.toLowerCase());
    }
    const target = `${ep.name}.${this.network}`.toLowerCase();
    const ptrs = new Map<string, string>();
    for (const ip of [att.ipv4, att.ipv6]) {
      const key = ip === undefined ? undefined : addressKey(ip);
      if (key !== undefined) ptrs.set(key, target);
    }
    const c: Contribution = { v4: one(att.ipv4), v6: one(att.ipv6), names: [...names], ptrs };
    this.#of.set(ep.id, c);
    for (const key of c.names) {
      group(this.#byName, key).set(ep.id, c);
      this.#refreshName(key);
    }
    for (const [key, t] of ptrs) {
      group(this.#byPtr, key).set(ep.id, t);
      this.#refreshPtr(key);
    }
  }

  remove(id: string): void {
    const c = this.#of.get(id);
    if (c === undefined) return;
    this.#of.delete(id);
    for (const key of c.names) {
      this.#byName.get(key)?.delete(id);
      this.#refreshName(key);
    }
    for (const key of c.ptrs.keys()) {
      this.#byPtr.get(key)?.delete(id);
      this.#refreshPtr(key);
    }
  }

  /** Merges a name's holders again: linear in how many hold it (5000 endpoints may share one alias). */
  #refreshName(key: string): void {
    if (this.#deferred !== undefined) return void this.#deferred.add(`name:${key}`);
    const members = this.#byName.get(key);
    if (members === undefined || members.size === 0) {
      this.#byName.delete(key);
      this.#entries.delete(key);
      return;
    }
    const entry = new EntryBuilder();
    const seen = new Set<string>();
    for (const c of members.values()) {
      for (const a of c.v4) if (!seen.has(a.ip)) seen.add(a.ip), entry.v4.push(a);
      for (const a of c.v6) if (!seen.has(a.ip)) seen.add(a.ip), entry.v6.push(a);
    }
    this.#entries.set(key, entry);
  }

  #refreshPtr(key: string): void {
    if (this.#deferred !== undefined) return void this.#deferred.add(`ptr:${key}`);
    const members = this.#byPtr.get(key);
    if (members === undefined || members.size === 0) {
      this.#byPtr.delete(key);
      this.#ptr.delete(key);
      return;
    }
    this.#ptr.set(key, [...new Set(members.values())]);
  }
}

function group<V>(groups: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let g = groups.get(key);
  if (g === undefined) groups.set(key, (g = new Map()));
  return g;
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
