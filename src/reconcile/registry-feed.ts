import type { Logger } from 'pino';
import { ENDPOINTS, idOf, NETWORKS, SERVICES, TASKS } from '../cluster/keys.js';
import type { EndpointObject, NetworkObject, ServiceObject, TaskObject } from '../cluster/objects.js';
import type { Registry } from '../registry/registry.js';
import type { EndpointSpec, NetworkSpec, ServiceSpec } from '../registry/types.js';
import type { Store, StoreEvent, Watch } from '../store/store.js';

/**
 * Feeds the registry (and so every resolver) from the store: a list at start, then each
 * transaction's events applied as one registry batch touching only what they name. A watch
 * that cannot resume (compacted history) lists again and swaps the whole registry at once.
 */
export class RegistryFeed {
  readonly #networks = new Map<string, NetworkObject>();
  /** Sandbox id → endpoint key → endpoint: the registry holds one endpoint per sandbox. */
  readonly #endpoints = new Map<string, Map<string, EndpointObject>>();
  readonly #services = new Map<string, ServiceObject>();
  readonly #tasks = new Map<string, Map<string, TaskObject>>();
  /** What the registry was last given for each service, to remove it by its network and name. */
  readonly #published = new Map<string, { network: string; name: string }>();
  #revision = 0;
  #watch: Watch | undefined;
  readonly #waiters = new Set<{ revision: number; resolve(): void }>();

  constructor(
    readonly store: Store,
    readonly registry: Registry,
    readonly logger: Logger,
  ) {}

  get revision(): number {
    return this.#revision;
  }

  /** Lists everything the registry needs and watches for what follows. */
  async start(): Promise<void> {
    const { kvs, revision } = await this.store.list('');
    for (const m of [this.#networks, this.#endpoints, this.#services, this.#tasks]) m.clear();
    this.#published.clear();
    for (const kv of kvs) this.#remember({ type: 'put', kv });
    this.registry.replace(this.#whole());
    for (const [id, svc] of this.#services) this.#published.set(id, { network: svc.network, name: svc.name });
    this.#advance(revision);
    this.#watch = this.store.watch('', revision, {
      events: (events, rev) => this.#apply(events, rev),
      reset: (reason) => {
        this.logger.warn({ reason }, 'registry feed: watch cannot resume; listing again');
        this.start().catch((err: Error) => this.logger.error({ err: err.message }, 'registry feed: relist failed'));
      },
    });
  }

  /** Resolves once the registry reflects every change up to `revision` (a write's own). */
  caughtUp(revision: number): Promise<void> {
    if (this.#revision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ revision, resolve }));
  }

  stop(): void {
    this.#watch?.close();
  }

  #advance(revision: number): void {
    this.#revision = Math.max(this.#revision, revision);
    for (const w of this.#waiters) {
      if (w.revision > this.#revision) continue;
      this.#waiters.delete(w);
      w.resolve();
    }
  }

  /** Updates the mirrors; returns what the registry must be told about, or undefined for keys it does not use. */
  #remember(e: StoreEvent): { kind: 'network' | 'sandbox' | 'service'; id: string; network?: NetworkObject } | undefined {
    const key = e.type === 'put' ? e.kv.key : e.key;
    const value = e.type === 'put' ? e.kv.value : undefined;
    if (key.startsWith(NETWORKS)) {
      const id = idOf(key);
      const old = this.#networks.get(id);
      setOrDelete(this.#networks, id, value as NetworkObject | undefined);
      return { kind: 'network', id, ...(old === undefined ? {} : { network: old }) };
    }
    if (key.startsWith(ENDPOINTS)) {
      const sandbox = ((value ?? e.prev?.value) as EndpointObject | undefined)?.sandbox.id;
      if (sandbox === undefined) return undefined;
      setInGroup(this.#endpoints, sandbox, key, value as EndpointObject | undefined);
      return { kind: 'sandbox', id: sandbox };
    }
    if (key.startsWith(SERVICES)) {
      const id = idOf(key);
      setOrDelete(this.#services, id, value as ServiceObject | undefined);
      return { kind: 'service', id };
    }
    if (key.startsWith(TASKS)) {
      const service = key.slice(TASKS.length, key.lastIndexOf('/'));
      setInGroup(this.#tasks, service, key, value as TaskObject | undefined);
      return { kind: 'service', id: service };
    }
    return undefined;
  }

  #apply(events: readonly StoreEvent[], revision: number): void {
    const touched = events.map((e) => this.#remember(e)).filter((t) => t !== undefined);
    try {
      this.registry.batch(() => {
        // Networks first and their removals last: the registry wants a network before its members.
        for (const t of touched) if (t.kind === 'network' && this.#networks.has(t.id)) this.registry.setNetwork(this.#network(this.#networks.get(t.id)!));
        for (const id of new Set(touched.filter((t) => t.kind === 'sandbox').map((t) => t.id))) this.#syncEndpoint(id);
        for (const id of new Set(touched.filter((t) => t.kind === 'service').map((t) => t.id))) this.#syncService(id);
        for (const t of touched) if (t.kind === 'network' && !this.#networks.has(t.id) && t.network !== undefined) this.registry.removeNetwork(t.network.name);
      });
    } catch (err) {
      // The store is the truth: a registry that disagrees with it is rebuilt from the mirrors.
      this.logger.error({ err: (err as Error).message, revision }, 'registry feed: an event did not apply; rebuilding the registry');
      this.registry.replace(this.#whole());
    }
    this.#advance(revision);
  }

  #syncEndpoint(sandbox: string): void {
    const spec = this.#endpoint(sandbox);
    if (spec !== undefined) this.registry.setEndpoint(spec);
    else if (this.registry.endpoint(sandbox) !== undefined) this.registry.removeEndpoint(sandbox);
  }

  #syncService(id: string): void {
    const before = this.#published.get(id);
    const spec = this.#service(id);
    if (before !== undefined && (spec === undefined || spec.network !== before.network || spec.name !== before.name)) {
      this.registry.removeService(before.network, before.name);
      this.#published.delete(id);
    }
    if (spec === undefined) return;
    this.registry.setService(spec);
    this.#published.set(id, { network: spec.network, name: spec.name });
  }

  #network(n: NetworkObject): NetworkSpec {
    return {
      name: n.name,
      id: n.id,
      dns: n.dns,
      ...(n.ipam === null ? {} : { subnet: n.ipam.subnet, gateway: n.ipam.gateway }),
      ...(n.ipam?.subnet6 === undefined ? {} : { ipv6Subnet: n.ipam.subnet6 }),
    };
  }

  #endpoint(sandbox: string): EndpointSpec | undefined {
    const eps = [...(this.#endpoints.get(sandbox)?.values() ?? [])].filter((e) => this.#networks.has(e.network));
    const first = eps[0];
    if (first === undefined) return undefined;
    return {
      id: sandbox,
      name: first.sandbox.name,
      hostname: first.sandbox.hostname,
      networks: Object.fromEntries(
        eps.map((e) => [this.#networks.get(e.network)!.name, { ...(e.ipv4 === undefined ? {} : { ipv4: e.ipv4 }), ...(e.ipv6 === undefined ? {} : { ipv6: e.ipv6 }), aliases: e.aliases }]),
      ),
    };
  }

  #service(id: string): ServiceSpec | undefined {
    const s = this.#services.get(id);
    if (s === undefined || ![...this.#networks.values()].some((n) => n.name === s.network)) return undefined;
    return {
      name: s.name,
      network: s.network,
      mode: s.mode,
      ...(s.vip === undefined ? {} : { vip: s.vip }),
      ports: s.ports,
      tasks: [...(this.#tasks.get(id)?.values() ?? [])].map((t) => ({
        id: t.id,
        ipv4: t.ipv4,
        healthy: t.healthy,
        draining: t.draining,
        weight: t.weight,
        ...(t.sandbox === undefined ? {} : { name: `${s.name}.${t.sandbox}` }),
      })),
    };
  }

  #whole() {
    return {
      networks: [...this.#networks.values()].map((n) => this.#network(n)),
      endpoints: [...this.#endpoints.keys()].map((id) => this.#endpoint(id)).filter((e) => e !== undefined),
      services: [...this.#services.keys()].map((id) => this.#service(id)).filter((s) => s !== undefined),
    };
  }
}

/** Keeps `value` under `key`, or forgets the key when there is none (a delete). */
function setOrDelete<V>(map: Map<string, V>, key: string, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

/** The same within one group of a map of groups; a group left empty goes. */
function setInGroup<V>(groups: Map<string, Map<string, V>>, group: string, key: string, value: V | undefined): void {
  const members = groups.get(group) ?? new Map<string, V>();
  setOrDelete(members, key, value);
  setOrDelete(groups, group, members.size === 0 ? undefined : members);
}
