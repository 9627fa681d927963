import type { Logger } from 'pino';
import { ENDPOINTS, idOf, NETWORKS, sandboxesOf, SERVICES, TASKS } from '../cluster/keys.js';
import { serviceVisibleOn, visibleOn, type EndpointObject, type NetworkObject, type ServiceObject, type TaskObject } from '../cluster/objects.js';
import type { KeyValue, Store, StoreEvent, Watch } from '../store/store.js';

/** What one store transaction (or a relist) changed, by the ids the reconcilers work with. */
export interface ViewChange {
  revision: number;
  /** The whole view was listed again (a watch that could not resume): every reconciler starts over. */
  relisted: boolean;
  /** Network ids put or deleted; `removed` has the deleted ones as they were. */
  networks: Set<string>;
  removed: NetworkObject[];
  /** Sandbox ids whose endpoints changed. */
  sandboxes: Set<string>;
  /** Ids of this node's sandboxes whose records were put or deleted (one with no network has no endpoint to tell). */
  ownSandboxes: Set<string>;
  /** Service ids whose object or tasks changed. */
  services: Set<string>;
}

/**
 * This node's view of the cluster store: networks, endpoints, services and tasks, listed once
 * and then kept by the store's watch. Every reconciler (the registry, the dataplane, replicas)
 * reads it and is told what each transaction changed; none watches the store itself.
 */
export class ClusterView {
  readonly #networks = new Map<string, NetworkObject>();
  /** Sandbox id → endpoint key → endpoint. */
  readonly #endpoints = new Map<string, Map<string, EndpointObject>>();
  /** The same endpoints by network id (their keys' middle part), so a network's are one lookup. */
  readonly #byNetwork = new Map<string, Map<string, EndpointObject>>();
  readonly #services = new Map<string, ServiceObject>();
  /** Service id → task key → task (with its revisions: placement keeps the older of two). */
  readonly #tasks = new Map<string, Map<string, KeyValue<TaskObject>>>();
  readonly #listeners: ((change: ViewChange) => void)[] = [];
  readonly #waiters = new Set<{ revision: number; resolve(): void }>();
  #revision = 0;
  #watch: Watch | undefined;

  constructor(
    readonly store: Store,
    /** This node's name: its `local` networks are visible here, other nodes' are not. */
    readonly node: string,
    readonly logger: Logger,
  ) {}

  get revision(): number {
    return this.#revision;
  }

  /** Whether a network is this node's to use: the cluster's, or a local one of this node. */
  visible(n: NetworkObject): boolean {
    return visibleOn(n, this.node);
  }

  /** Every network in the cluster, visible here or not (IPAM must keep clear of all of them). */
  allNetworks(): NetworkObject[] {
    return [...this.#networks.values()];
  }

  networks(): NetworkObject[] {
    return this.allNetworks().filter((n) => this.visible(n));
  }

  network(id: string): NetworkObject | undefined {
    return this.#networks.get(id);
  }

  /** A sandbox's endpoints on the networks visible here. */
  endpointsOf(sandbox: string): EndpointObject[] {
    return [...(this.#endpoints.get(sandbox)?.values() ?? [])].filter((e) => {
      const n = this.#networks.get(e.network);
      return n !== undefined && this.visible(n);
    });
  }

  sandboxesWithEndpoints(): string[] {
    return [...this.#endpoints.keys()];
  }

  /** Every endpoint on network `id`, whichever node runs it. */
  endpointsOn(id: string): EndpointObject[] {
    return [...(this.#byNetwork.get(id)?.values() ?? [])];
  }

  /** The services on networks visible here (a service on another node's local network is that node's alone). */
  services(): ServiceObject[] {
    return [...this.#services.values()].filter((s) => serviceVisibleOn(s, this.#networks, this.node));
  }

  service(id: string): ServiceObject | undefined {
    const s = this.#services.get(id);
    return s !== undefined && serviceVisibleOn(s, this.#networks, this.node) ? s : undefined;
  }

  tasksOf(service: string): KeyValue<TaskObject>[] {
    return [...(this.#tasks.get(service)?.values() ?? [])];
  }

  onChange(listener: (change: ViewChange) => void): void {
    this.#listeners.push(listener);
  }

  /** Lists the store and watches for what follows. */
  async start(): Promise<void> {
    const { kvs, revision } = await this.store.list('');
    for (const m of [this.#networks, this.#endpoints, this.#byNetwork, this.#services, this.#tasks]) m.clear();
    const change = emptyChange(revision, true);
    for (const kv of kvs) this.#remember({ type: 'put', kv }, change);
    this.#emit(change);
    this.#watch?.close();
    this.#watch = this.store.watch('', revision, {
      events: (events, rev) => {
        const c = emptyChange(rev, false);
        for (const e of events) this.#remember(e, c);
        this.#emit(c);
      },
      reset: (reason) => {
        this.logger.warn({ reason }, 'cluster view: watch cannot resume; listing again');
        this.start().catch((err: Error) => this.logger.error({ err: err.message }, 'cluster view: relist failed'));
      },
    });
  }

  /** Resolves once the view (and every listener) has seen the store up to `revision`: a write's own. */
  caughtUp(revision: number): Promise<void> {
    if (this.#revision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ revision, resolve }));
  }

  stop(): void {
    this.#watch?.close();
  }

  #emit(change: ViewChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.logger.error({ err: (err as Error).message, revision: change.revision }, 'cluster view: a listener failed');
      }
    }
    this.#revision = Math.max(this.#revision, change.revision);
    for (const w of this.#waiters) {
      if (w.revision > this.#revision) continue;
      this.#waiters.delete(w);
      w.resolve();
    }
  }

  #remember(e: StoreEvent, change: ViewChange): void {
    const key = e.type === 'put' ? e.kv.key : e.key;
    const value = e.type === 'put' ? e.kv.value : undefined;
    if (key.startsWith(NETWORKS)) {
      const id = idOf(key);
      const old = this.#networks.get(id);
      setOrDelete(this.#networks, id, value as NetworkObject | undefined);
      change.networks.add(id);
      if (value === undefined && old !== undefined) change.removed.push(old);
    } else if (key.startsWith(ENDPOINTS)) {
      const sandbox = ((value ?? e.prev?.value) as EndpointObject | undefined)?.sandbox.id ?? this.#sandboxOfEndpoint(key);
      if (sandbox === undefined) return;
      setInGroup(this.#endpoints, sandbox, key, value as EndpointObject | undefined);
      setInGroup(this.#byNetwork, key.slice(ENDPOINTS.length, key.lastIndexOf('/')), key, value as EndpointObject | undefined);
      change.sandboxes.add(sandbox);
    } else if (key.startsWith(sandboxesOf(this.node))) {
      change.ownSandboxes.add(idOf(key));
    } else if (key.startsWith(SERVICES)) {
      const id = idOf(key);
      setOrDelete(this.#services, id, value as ServiceObject | undefined);
      change.services.add(id);
    } else if (key.startsWith(TASKS)) {
      const service = key.slice(TASKS.length, key.lastIndexOf('/'));
      setInGroup(this.#tasks, service, key, e.type === 'put' ? (e.kv as KeyValue<TaskObject>) : undefined);
      change.services.add(service);
    }
  }

  /** A deleted endpoint's sandbox when the event carries no previous value (an expired lease on some stores). */
  #sandboxOfEndpoint(key: string): string | undefined {
    for (const [sandbox, eps] of this.#endpoints) if (eps.has(key)) return sandbox;
    return undefined;
  }
}

const emptyChange = (revision: number, relisted: boolean): ViewChange => ({ revision, relisted, networks: new Set(), removed: [], sandboxes: new Set(), ownSandboxes: new Set(), services: new Set() });

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
