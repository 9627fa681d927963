import { addressKey } from './address.js';
import { HolderTable, type Holder } from './holder-table.js';
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
  /** Service names, `tasks.<svc>`, task names and SRV names (the registry finds `name.network` by them). */
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

  /** Adds addresses under `name` (lookups find `name.network` by it too); a name two services give gets both. */
  add(table: Map<string, EntryBuilder>, name: string, v4: readonly WeightedAddress[], v6: readonly WeightedAddress[]): void {
    const key = name.toLowerCase();
    let entry = table.get(key);
    if (entry === undefined) table.set(key, (entry = new EntryBuilder()));
    for (const a of v4) if (!entry.v4.some((x) => x.ip === a.ip)) entry.v4.push(a);
    for (const a of v6) if (!entry.v6.some((x) => x.ip === a.ip)) entry.v6.push(a);
  }

  addSrv(name: string, targets: SrvTarget[]): void {
    const entry = new EntryBuilder();
    entry.srv = targets;
    this.services.set(name.toLowerCase(), entry);
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

/**
 * One endpoint on one network, as the shared tables hold it. It is itself the entry of every key
 * only it holds (most keys), and keeps only what it was given: its address lists and PTR target
 * are made when a first answer asks (replays do not), so 100k endpoints are 100k small objects
 * rather than 600k arrays and records (126 → 78 MB of indexes measured).
 */
export class EndpointHolder implements NameEntry, Holder {
  /** The keys it answers under: bare names (the registry finds `name.network` by them). */
  readonly names: readonly string[];

  constructor(
    readonly id: string,
    readonly network: string,
    readonly name: string,
    readonly ipv4: string | undefined,
    readonly ipv6: string | undefined,
    names: readonly string[],
    /** Undefined, not empty, when there are none (nearly always): no array per endpoint. */
    readonly secondary: readonly string[] | undefined,
  ) {
    this.names = names;
  }

  get v4(): readonly WeightedAddress[] {
    return this.#withSecondary(one(this.ipv4), false);
  }

  get v6(): readonly WeightedAddress[] {
    return this.#withSecondary(one(this.ipv6), true);
  }

  #withSecondary(first: WeightedAddress[], v6: boolean): WeightedAddress[] {
    for (const ip of this.secondary ?? []) if (ip.includes(':') === v6) first.push({ ip, weight: 1 });
    return first;
  }

  get srv(): null {
    return null;
  }

  get ptrKeys(): string[] {
    const keys: string[] = [];
    const add = (ip: string | undefined): void => {
      const key = ip === undefined ? undefined : addressKey(ip);
      if (key !== undefined) keys.push(key);
    };
    add(this.ipv4);
    add(this.ipv6);
    for (const ip of this.secondary ?? []) add(ip);
    return keys;
  }

  /** Its PTR target (`name.network`), as the list a reverse lookup returns. */
  get targets(): readonly string[] {
    return [`${this.name}.${this.network}`.toLowerCase()];
  }
}

/** The shared tables every network's endpoint names are written into, and lookups read. */
export interface EndpointTables {
  readonly names: HolderTable<EndpointHolder, NameEntry>;
  readonly ptr: HolderTable<EndpointHolder, readonly string[]>;
}

const uniqueTargets = (lists: (readonly string[])[]): readonly string[] => [...new Set(lists.flat())];

export const endpointTables = (): EndpointTables => ({
  names: new HolderTable<EndpointHolder, NameEntry>((h) => h, mergeEntries),
  ptr: new HolderTable<EndpointHolder, readonly string[]>((h) => h.targets, uniqueTargets),
});

/** A network's value under one key of its service tables (already merged there: one holder per network). */
interface ServiceHolder<V> extends Holder {
  readonly value: V;
}

export interface ServiceTables {
  readonly names: HolderTable<ServiceHolder<NameEntry>, NameEntry>;
  readonly ptr: HolderTable<ServiceHolder<readonly string[]>, readonly string[]>;
}

export const serviceTables = (): ServiceTables => ({
  names: new HolderTable<ServiceHolder<NameEntry>, NameEntry>((h) => h.value, mergeEntries),
  ptr: new HolderTable<ServiceHolder<readonly string[]>, readonly string[]>((h) => h.value, uniqueTargets),
});

/** Moves a network's service tables from `old` to `index` in the shared tables. */
export function putServiceIndex(tables: ServiceTables, network: string, old: ServiceIndex | undefined, index: ServiceIndex | undefined): void {
  const gone = { id: '', network };
  for (const key of old?.services.keys() ?? []) tables.names.remove(key, gone);
  for (const key of old?.ptr.keys() ?? []) tables.ptr.remove(key, gone);
  for (const [key, value] of index?.services ?? []) tables.names.add(key, { id: '', network, value });
  for (const [key, value] of index?.ptr ?? []) tables.ptr.add(key, { id: '', network, value });
}

/**
 * An endpoint's names on one network (container name, hostname, aliases, short id, which the
 * registry also finds as `name.network`; and its PTR targets), written into the shared tables
 * one endpoint at a time: a change costs what that endpoint names, whatever else is on the
 * network. A name two endpoints share (an alias) answers with both, in the order they got it.
 * Nothing is kept per endpoint to take them out again: the spec they came from (specs are never
 * edited in place) gives the same keys, and the tables match holders by id and network.
 */
export function addEndpointNames(tables: EndpointTables, network: string, ep: EndpointSpec): void {
  const h = holderOf(ep, network);
  if (h === undefined) return;
  for (const key of h.names) tables.names.add(key, h);
  for (const key of h.ptrKeys) tables.ptr.add(key, h);
}

/** Takes out what addEndpointNames put in for `ep` on `network`. */
export function removeEndpointNames(tables: EndpointTables, network: string, ep: EndpointSpec): void {
  const h = holderOf(ep, network);
  if (h === undefined) return;
  for (const key of h.names) tables.names.remove(key, h);
  for (const key of h.ptrKeys) tables.ptr.remove(key, h);
}

function holderOf(ep: EndpointSpec, network: string): EndpointHolder | undefined {
  const att = ep.networks[network];
  if (att === undefined) return undefined;
  scratch.length = 0;
  addName(ep.name);
  if (ep.hostname !== undefined) addName(ep.hostname);
  for (const a of att.aliases ?? []) addName(a);
  addName(ep.id.slice(0, 12));
  // A copy at its size: an array grown by push keeps room for 17 (152 bytes where 3 names take 48).
  return new EndpointHolder(ep.id, network, ep.name, att.ipv4, att.ipv6, scratch.slice(), att.secondary?.length ? att.secondary : undefined);
}

/** The names an endpoint is being given, each once, case-folded (one array reused for every endpoint). */
const scratch: string[] = [];
function addName(name: string): void {
  const key = name.toLowerCase();
  if (!scratch.includes(key)) scratch.push(key);
}

/** Merges entries of one name (its holders on a network, or its networks in a scope), each address once. */
export function mergeEntries(entries: readonly NameEntry[]): NameEntry {
  if (entries.length === 1) return entries[0]!;
  const merged = new EntryBuilder();
  const seen = new Set<string>();
  for (const e of entries) {
    for (const a of e.v4) if (!seen.has(a.ip)) seen.add(a.ip), merged.v4.push(a);
    for (const a of e.v6) if (!seen.has(a.ip)) seen.add(a.ip), merged.v6.push(a);
    if (e.srv !== null) merged.srv = [...(merged.srv ?? []), ...e.srv];
  }
  return merged;
}
