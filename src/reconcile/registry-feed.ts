import type { Logger } from 'pino';
import type { NetworkObject } from '../cluster/objects.js';
import type { Registry } from '../registry/registry.js';
import type { EndpointSpec, NetworkSpec, ServiceSpec } from '../registry/types.js';
import type { ClusterView, ViewChange } from './cluster-view.js';

/**
 * Feeds the registry (and so every resolver) from the cluster view: each transaction's changes
 * as one registry batch touching only what they name; a relist swaps the whole registry at once.
 * Only networks visible on this node are published: every node has its own `bridge`, and
 * another node's local networks are not this one's to resolve.
 */
export class RegistryFeed {
  /** What the registry was last given for each service, to remove it by its network and name. */
  readonly #published = new Map<string, { network: string; name: string }>();

  constructor(
    readonly view: ClusterView,
    readonly registry: Registry,
    readonly logger: Logger,
  ) {
    view.onChange((change) => this.#apply(change));
  }

  #apply(change: ViewChange): void {
    if (change.relisted) return this.#replace();
    try {
      this.registry.batch(() => {
        // Networks first and their removals last: the registry wants a network before its members.
        for (const id of change.networks) {
          const n = this.view.network(id);
          if (n !== undefined && this.view.visible(n)) this.registry.setNetwork(networkSpec(n));
        }
        for (const id of change.sandboxes) this.#syncEndpoint(id);
        for (const id of change.services) this.#syncService(id);
        for (const n of change.removed) if (this.view.visible(n)) this.registry.removeNetwork(n.name);
      });
    } catch (err) {
      // The store is the truth: a registry that disagrees with it is rebuilt from the view.
      this.logger.error({ err: (err as Error).message, revision: change.revision }, 'registry feed: a change did not apply; rebuilding the registry');
      this.#replace();
    }
  }

  #replace(): void {
    const services = this.view.services().map((s) => this.#service(s.id)).filter((s) => s !== undefined);
    this.registry.replace({
      networks: this.view.networks().map(networkSpec),
      endpoints: this.view.sandboxesWithEndpoints().map((id) => this.#endpoint(id)).filter((e) => e !== undefined),
      services,
    });
    this.#published.clear();
    for (const s of this.view.services()) if (this.#service(s.id) !== undefined) this.#published.set(s.id, { network: s.network, name: s.name });
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

  #endpoint(sandbox: string): EndpointSpec | undefined {
    const eps = this.view.endpointsOf(sandbox);
    const first = eps[0];
    if (first === undefined) return undefined;
    return {
      id: sandbox,
      name: first.sandbox.name,
      hostname: first.sandbox.hostname,
      networks: Object.fromEntries(
        eps.map((e) => [this.view.network(e.network)!.name, { ...(e.ipv4 === undefined ? {} : { ipv4: e.ipv4 }), ...(e.ipv6 === undefined ? {} : { ipv6: e.ipv6 }), aliases: e.aliases }]),
      ),
    };
  }

  #service(id: string): ServiceSpec | undefined {
    const s = this.view.service(id);
    if (s === undefined || !this.view.networks().some((n) => n.name === s.network)) return undefined;
    return {
      name: s.name,
      network: s.network,
      mode: s.mode,
      ...(s.vip === undefined ? {} : { vip: s.vip }),
      ports: s.ports,
      tasks: this.view.tasksOf(id).map(({ value: t }) => ({
        id: t.id,
        ipv4: t.ipv4,
        healthy: t.healthy,
        draining: t.draining,
        weight: t.weight,
        ...(t.sandbox === undefined ? {} : { name: `${s.name}.${t.sandbox}` }),
      })),
    };
  }
}

function networkSpec(n: NetworkObject): NetworkSpec {
  return {
    name: n.name,
    id: n.id,
    dns: n.dns,
    ...(n.ipam === null ? {} : { subnet: n.ipam.subnet, gateway: n.ipam.gateway }),
    ...(n.ipam?.subnet6 === undefined ? {} : { ipv6Subnet: n.ipam.subnet6 }),
  };
}
