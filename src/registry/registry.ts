import { EventEmitter } from 'node:events';
import { addEndpointNames, buildServiceIndex, endpointTables, mergeEntries, putServiceIndex, removeEndpointNames, serviceTables, type NameEntry, type ServiceIndex } from './name-index.js';
import { attachmentAddresses, type EndpointSpec, type NetworkSpec, type RecordsState, type ServiceSpec, type TaskSpec } from './types.js';
import { parseRecords } from './validate.js';

/** The set of networks whose names a query may see. Scopes are shared objects: compare keys. */
export class Scope {
  readonly key: string;
  readonly networks: readonly string[];
  readonly #set: ReadonlySet<string>;
  constructor(networks: readonly string[]) {
    this.networks = [...networks].sort();
    this.key = this.networks.join(',');
    this.#set = new Set(networks);
  }

  has(network: string): boolean {
    return this.#set.has(network);
  }
}

export interface RegistryChange {
  generation: number;
  /** Networks whose names or members changed. */
  networks: readonly string[];
}

export interface RegistryEvents {
  change: [RegistryChange];
}

const serviceKey = (network: string, name: string): string => `${network}/${name}`;

/** `items` under each of the keys `keysOf` gives it. */
function groupBy<T>(items: Iterable<T>, keysOf: (item: T) => readonly string[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) for (const k of keysOf(item)) (out.get(k) ?? out.set(k, []).get(k)!).push(item);
  return out;
}

/**
 * The model: networks, endpoints and services, with lookup indexes over every network, a scope
 * per endpoint address and a `change` event after every mutation. It does no I/O; stores persist
 * it and listeners (DNS answer cache, dataplane) react to its events. Specs it is given become
 * its own (the indexes keep them, not copies): give it new objects for a change, never an old
 * one edited in place.
 */
export class Registry extends EventEmitter<RegistryEvents> {
  #networks = new Map<string, NetworkSpec>();
  #endpoints = new Map<string, EndpointSpec>();
  #services = new Map<string, ServiceSpec>();
  /** The networks with names (their endpoints' are in the shared tables), and their service tables. */
  #named = new Set<string>();
  #serviceIndexes = new Map<string, ServiceIndex>();
  /** Every network's names in one table per kind, which lookups read (see HolderTable). */
  readonly #endpointTables = endpointTables();
  readonly #serviceTables = serviceTables();
  /** Lowercased network name → the networks so named (queries arrive lowercased). */
  #networksByLower = new Map<string, string[]>();
  #scopeByAddress = new Map<string, Scope>();
  /** Every distinct scope by key, so `scope()` is one lookup rather than a scan of the endpoints. */
  #scopeByKey = new Map<string, Scope>();
  #allScope = new Scope([]);
  #generation = 0;
  /** Networks changed inside `batch()`, reindexed once when it ends. */
  #pending: Set<string> | undefined;

  /** Builds a registry from a records document, validating it first. */
  static fromRecords(doc: unknown): Registry {
    const r = new Registry();
    r.replace(parseRecords(doc));
    return r;
  }

  get generation(): number {
    return this.#generation;
  }

  /**
   * Runs several changes as one: a single reindex and one `change` event at the end, so no query
   * sees a transaction half applied (a service without its tasks).
   */
  batch(fn: () => void): void {
    if (this.#pending !== undefined) return fn();
    const pending = (this.#pending = new Set());
    try {
      fn();
    } finally {
      this.#pending = undefined;
      if (pending.size > 0) this.#changed(pending);
    }
  }

  /** Swaps in a whole new state at once (a records reload): one event, no half-applied moment. */
  replace(state: RecordsState): void {
    const before = [...this.#networks.keys()];
    this.#networks = new Map(state.networks.map((n) => [n.name, n]));
    this.#endpoints = new Map(state.endpoints.map((e) => [e.id, e]));
    this.#services = new Map(state.services.map((s) => [serviceKey(s.network, s.name), s]));
    this.#named = new Set();
    this.#serviceIndexes = new Map();
    for (const table of [this.#endpointTables.names, this.#endpointTables.ptr, this.#serviceTables.names, this.#serviceTables.ptr]) table.clear();
    this.#reindex(new Set([...before, ...this.#networks.keys()]), true);
  }

  /** The whole state, as a records document (what stores persist). */
  state(): RecordsState {
    return {
      networks: [...this.#networks.values()],
      endpoints: [...this.#endpoints.values()],
      services: [...this.#services.values()],
    };
  }

  setNetwork(net: NetworkSpec): void {
    this.#networks.set(net.name, net);
    this.#reindex(new Set([net.name]), true);
  }

  /** Removes a network; endpoints and services still on it must be removed first. */
  removeNetwork(name: string): void {
    const users = [...this.#endpoints.values()].filter((e) => name in e.networks).map((e) => e.name);
    users.push(...[...this.#services.values()].filter((s) => s.network === name).map((s) => `service ${s.name}`));
    if (users.length > 0) throw new Error(`registry: network ${name} is in use by ${users.join(', ')}`);
    if (!this.#networks.delete(name)) throw new Error(`registry: no network ${name}`);
    this.#reindex(new Set([name]), true);
  }

  setEndpoint(ep: EndpointSpec): void {
    for (const net of Object.keys(ep.networks)) this.#requireNetwork(net, `endpoint ${ep.name}`);
    const old = this.#endpoints.get(ep.id);
    this.#endpoints.set(ep.id, ep);
    this.#placeEndpoint(old, ep);
  }

  removeEndpoint(id: string): void {
    const old = this.#endpoints.get(id);
    if (old === undefined) throw new Error(`registry: no endpoint ${id}`);
    this.#endpoints.delete(id);
    this.#placeEndpoint(old, undefined);
  }

  setService(svc: ServiceSpec): void {
    this.#requireNetwork(svc.network, `service ${svc.name}`);
    this.#services.set(serviceKey(svc.network, svc.name), svc);
    this.#reindex(new Set([svc.network]));
  }

  removeService(network: string, name: string): void {
    if (!this.#services.delete(serviceKey(network, name))) throw new Error(`registry: no service ${name} on ${network}`);
    this.#reindex(new Set([network]));
  }

  /** Changes one task's health, draining or weight: the next answer reflects it. */
  updateTask(network: string, service: string, taskId: string, change: Pick<TaskSpec, 'healthy' | 'draining' | 'weight'>): void {
    const svc = this.#services.get(serviceKey(network, service));
    if (svc === undefined) throw new Error(`registry: no service ${service} on ${network}`);
    if (!svc.tasks.some((t) => t.id === taskId)) throw new Error(`registry: service ${service} has no task ${taskId}`);
    this.setService({ ...svc, tasks: svc.tasks.map((t) => (t.id === taskId ? { ...t, ...change } : t)) });
  }

  network(name: string): NetworkSpec | undefined {
    return this.#networks.get(name);
  }

  endpoint(id: string): EndpointSpec | undefined {
    return this.#endpoints.get(id);
  }

  networks(): IterableIterator<NetworkSpec> {
    return this.#networks.values();
  }

  /** Every network with names (dns not switched off): the default scope of a listener. */
  get allScope(): Scope {
    return this.#allScope;
  }

  /** A scope over the named networks, shared with endpoints that have the same set. */
  scope(networks: readonly string[]): Scope {
    const key = [...new Set(networks)].sort().join(',');
    return this.#scopeByKey.get(key) ?? new Scope(key === '' ? [] : key.split(','));
  }

  /** The scope of the endpoint holding `address`: the networks its queries may see. */
  scopeOf(address: string): Scope | undefined {
    return this.#scopeByAddress.get(address);
  }

  /** What `name` resolves to among `kind` names in `scope`, merged across its networks. */
  lookup(scope: Scope, kind: 'endpoints' | 'services', name: string): NameEntry | undefined {
    const table = (kind === 'endpoints' ? this.#endpointTables : this.#serviceTables).names;
    const bare = table.within(name, scope);
    let qualified: NameEntry[] | undefined;
    // `name.network` is the bare name on that network alone; a network's name may hold dots.
    for (let dot = name.indexOf('.'); dot > 0; dot = name.indexOf('.', dot + 1)) {
      for (const net of this.#networksByLower.get(name.slice(dot + 1)) ?? []) {
        const entry = scope.has(net) ? table.at(name.slice(0, dot), net) : undefined;
        if (entry !== undefined) (qualified ??= []).push(entry);
      }
    }
    if (qualified === undefined) return bare;
    return mergeEntries(bare === undefined ? qualified : [bare, ...qualified]);
  }

  /** PTR targets of an address (an addressKey) in `scope`: those of the first of its networks that has it, endpoints before services. */
  reverse(scope: Scope, key: string): readonly string[] | undefined {
    const endpoints = this.#endpointTables.ptr.first(key, scope);
    const services = this.#serviceTables.ptr.first(key, scope);
    if (endpoints === undefined || services === undefined) return (endpoints ?? services)?.value;
    if (endpoints.network === services.network) return [...endpoints.value, ...services.value];
    return endpoints.network < services.network ? endpoints.value : services.value;
  }

  #requireNetwork(name: string, who: string): void {
    if (!this.#networks.has(name)) throw new Error(`registry: ${who}: network ${name} does not exist`);
  }

  /**
   * An endpoint changed (`old` → `ep`; undefined when it came or went): its names move on the
   * networks it left and joined, and its addresses get their scope. Nothing else is looked at.
   */
  #placeEndpoint(old: EndpointSpec | undefined, ep: EndpointSpec | undefined): void {
    const touched = new Set([...Object.keys(old?.networks ?? {}), ...Object.keys(ep?.networks ?? {})]);
    for (const net of touched) {
      if (!this.#named.has(net)) continue;
      if (old !== undefined) removeEndpointNames(this.#endpointTables, net, old);
      if (ep !== undefined) addEndpointNames(this.#endpointTables, net, ep);
    }
    for (const att of Object.values(old?.networks ?? {})) for (const ip of attachmentAddresses(att)) this.#scopeByAddress.delete(ip);
    if (ep !== undefined) this.#scopeAddresses(ep);
    this.#changed(touched);
  }

  /** Rebuilds the tables of `changed` networks: services always, endpoints too when `networks` (a network itself changed). */
  #reindex(changed: Set<string>, networks = false): void {
    // Members grouped by network in one pass each, not one scan of everything per network (a reload names them all).
    let endpointsOn: Map<string, EndpointSpec[]> | undefined;
    const servicesOn = groupBy(this.#services.values(), (s) => [s.network]);
    for (const name of changed) {
      const net = this.#networks.get(name);
      // The endpoints on a network are the ones whose names it holds: changes to them go through #placeEndpoint.
      const members = (): EndpointSpec[] => (endpointsOn ??= groupBy(this.#endpoints.values(), (e) => Object.keys(e.networks))).get(name) ?? [];
      if (net === undefined || net.dns === false) {
        if (this.#named.delete(name)) for (const ep of members()) removeEndpointNames(this.#endpointTables, name, ep);
        this.#putServices(name, undefined);
        continue;
      }
      if (networks || !this.#named.has(name)) {
        if (this.#named.has(name)) for (const ep of members()) removeEndpointNames(this.#endpointTables, name, ep);
        for (const ep of members()) addEndpointNames(this.#endpointTables, name, ep);
        this.#named.add(name);
      }
      this.#putServices(name, buildServiceIndex(net, servicesOn.get(name) ?? []));
    }
    if (networks) this.#rebuildScopes();
    this.#changed(changed);
  }

  /** Swaps a network's service tables, in its own map and in the shared ones. */
  #putServices(network: string, index: ServiceIndex | undefined): void {
    putServiceIndex(this.#serviceTables, network, this.#serviceIndexes.get(network), index);
    if (index === undefined) this.#serviceIndexes.delete(network);
    else this.#serviceIndexes.set(network, index);
  }

  /** One generation and one `change` event per change, or per batch at its end. */
  #changed(networks: Set<string>): void {
    if (this.#pending !== undefined) {
      for (const name of networks) this.#pending.add(name);
      return;
    }
    this.#generation++;
    this.emit('change', { generation: this.#generation, networks: [...networks] });
  }

  /** One Scope object per distinct network set, so that caches can key on scope identity. */
  #rebuildScopes(): void {
    this.#networksByLower = groupBy(this.#networks.keys(), (n) => [n.toLowerCase()]);
    const dnsNets = [...this.#networks.values()].filter((n) => n.dns !== false).map((n) => n.name);
    this.#allScope = new Scope(dnsNets);
    this.#scopeByKey = new Map<string, Scope>([[this.#allScope.key, this.#allScope]]);
    this.#scopeByAddress = new Map();
    for (const ep of this.#endpoints.values()) this.#scopeAddresses(ep);
  }

  /** The scope of an endpoint's addresses: the networks with names it is on. */
  #scopeAddresses(ep: EndpointSpec): void {
    const on = Object.keys(ep.networks);
    // Most endpoints are on one network: its name is the key, with no array sorted and joined.
    const nets = on.length === 1 ? (this.#named.has(on[0]!) ? on : []) : on.filter((n) => this.#named.has(n)).sort();
    const key = nets.length === 1 ? nets[0]! : nets.join(',');
    let scope = this.#scopeByKey.get(key);
    if (scope === undefined) this.#scopeByKey.set(key, (scope = new Scope(nets)));
    for (const att of Object.values(ep.networks)) for (const ip of attachmentAddresses(att)) this.#scopeByAddress.set(ip, scope);
  }
}
