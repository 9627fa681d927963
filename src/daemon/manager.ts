import { existsSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { nftVipBackend, type VipBackend } from '../net/lb/backend.js';
import { hostFacts, type HostFacts } from '../net/link/host.js';
import { PortReservations, type HostPort } from '../net/ports/reservations.js';
import type { PortMapping } from '../net/ports/spec.js';
import type { DnsServer } from '../server/server.js';
import { forEachBounded } from './bounded.js';
import { hostIngressPorts, hostModePorts, INGRESS_NETWORK, INGRESS_ROLE, INGRESS_SANDBOX, INGRESS_TABLE, ingressPorts, ingressRequest, meshServices } from './ingress.js';
import { nftApply } from '../net/nft/apply.js';
import { renderIngressTable } from '../net/nft/ruleset.js';
import { inNetns } from '../netns/netns.js';
import { defaultRouteNetwork, GATEWAY_BRIDGE, gatewayBridgeRequest, needsGatewayBridge } from './gateway-bridge.js';
import type { DaemonCore } from './core.js';
import { dataplane, netnsPath, type Dataplane } from './dataplane.js';
import type { TunnelUp } from '../net/drivers/overlay.js';
import { ApiError, badRequest, conflict, forbidden, notFound } from './errors.js';
import { addressSpace, attachRecord, findNetwork, findSandbox, ownNamespace, planNetwork, planSandbox, vxlanDevice } from './plan.js';
import { publishRules } from './projection.js';
import { Replicas } from './replicas.js';
import type { AttachRequest, NetworkCreate, SandboxCreate } from './requests.js';
import { balance, ServiceManager, vipTableIs } from './service-manager.js';
import { serviceRecord, type ServiceRecord } from './services.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';
import { claimAddress, claimSubnet, freeVni } from '../cluster/ipam-claims.js';
import { addressKey, taskKey, vniKey } from '../cluster/keys.js';
import type { AddressClaim } from '../cluster/objects.js';
import type { ClusterView, ViewChange } from '../reconcile/cluster-view.js';
import { SandboxUpkeep, UpkeepError } from './sandbox-upkeep.js';
import { create, StoreUnavailableError, writeInChunks, type Condition, type Operation, type Store } from '../store/store.js';
import { explainNetworkConflict, networkClaims, networkDeletes, networkPuts, nodeLeftovers } from './cluster-writes.js';
import type { SavedState } from './saved-state.js';
import type { EndpointObject, TaskObject } from '../cluster/objects.js';
import type { PlacedTask } from '../cluster/placement.js';

/** As Docker: an overlay made without --attachable is for a service's replicas alone; the gateway bridge is tsnet's to attach. */
function mayJoinByHand(net: NetworkRecord): void {
  if (net.name === GATEWAY_BRIDGE) throw forbidden(`${GATEWAY_BRIDGE} is joined by tsnet for a sandbox on an overlay, not by hand`);
  if (net.driver === 'overlay' && net.attachable !== true) throw forbidden(`network ${net.name} is not manually attachable (create it with --attachable)`);
}

/** Sandboxes rewired at once after a restart: 200 of them came back in 7.2 s one at a time, 3.7 s with 8, 4.2 s with 16 (2 cores). */
const RESTORE_PARALLEL = 8;


export interface ManagerOptions {
  /** Where this node's sandboxes and tasks are written, and the sandboxes it held at start. */
  saved: SavedState;
  sandboxes: SandboxRecord[];
  /** The cluster store, for what every node shares (networks, services, IPAM claims). */
  store: Store;
  /** The store as this node sees it; a change is answered once the view (and the registry) has it. */
  view: ClusterView;
  /** Brings the reconcilers that follow the view (overlay peers) to what it holds now: awaited before a change is answered, and at the end of a restore. */
  settled?: () => Promise<void>;
  /** The daemon's state directory (namespace intents, the owner mark). */
  stateDir: string;
  dns: DnsServer;
  logger: Logger;
  /** Search domains of the host, copied into sandboxes that set none (as Docker does). */
  hostSearch: readonly string[];
  /** The default `bridge` network's device and subnet (Docker: docker0, 172.17.0.0/16). */
  defaultBridge?: { device: string; subnet?: string };
  /** The nftables table (family inet) tsnet owns. */
  nftTable?: string;
  /** Sandbox namespaces are named prefix + sandbox name under /run/netns. */
  netnsPrefix?: string;
  /** Marks the links this daemon makes (their alias); default `tsnet`. */
  owner?: string;
  /** The VIP dataplane (default nftables; IPVS where the kernel has it and --lb ipvs asks). */
  vipBackend?: VipBackend;
  /** The nodes replicas may be placed on now (default: this one). */
  readyNodes?: () => readonly string[];
  /** Brings this node's WireGuard tunnel up and gives its address, for encrypted overlays (src/reconcile/tunnels.ts). */
  tunnel?: TunnelUp;
}

/**
 * The control plane of one node. A change is validated, written to the cluster store and made
 * in this node's kernel, and answered once this node's view of the store (so the registry the
 * resolvers read) has it. What other nodes change reaches this one through the same view: a
 * reconcile pass then brings the kernel in line (networks, the firewall, the VIP tables). A
 * change the kernel refuses is rolled back and nothing of it stays stored. Changes and reconcile
 * passes run one at a time.
 */
export class Manager implements DaemonCore {
  readonly #o: ManagerOptions;
  readonly #dp: Dataplane;
  #sandboxes: SandboxRecord[];
  /** The networks this node has made in its kernel, by id, as they were made. */
  readonly #realized = new Map<string, NetworkRecord>();
  /** Networks whose kernel part could not be made: their sandboxes are not wired to them. */
  readonly #broken = new Set<string>();
  #cache: { revision: number; sandboxes: SandboxRecord[]; state: DaemonState } | undefined;
  /** Each sandbox's files and resolver. */
  readonly #upkeep: SandboxUpkeep;
  readonly #ports = new PortReservations();
  /** Services and their tasks, through this manager's queue and store. */
  readonly services = new ServiceManager(this);
  readonly replicas: Replicas;
  readonly vipBackend: VipBackend;
  #queue: Promise<unknown> = Promise.resolve();
  #reconcileQueued = false;

  constructor(options: ManagerOptions) {
    this.#o = options;
    this.#dp = dataplane(options.owner ?? 'tsnet', options.stateDir, options.netnsPrefix ?? 'tsnet-', options.tunnel);
    this.replicas = new Replicas(this, options.logger.child({ part: 'replicas' }), options.readyNodes ?? (() => [this.node]));
    this.vipBackend = options.vipBackend ?? nftVipBackend;
    this.#upkeep = new SandboxUpkeep({ dns: options.dns, state: () => this.state, view: options.view, hostSearch: options.hostSearch, logger: options.logger.child({ part: 'sandbox-upkeep' }) });
    this.#sandboxes = options.sandboxes;
    options.view.onChange((change) => this.#changed(change));
  }

  get node(): string {
    return this.#o.saved.node;
  }

  get store(): Store {
    return this.#o.store;
  }

  /** Networks and services as this node's view has them, with this node's own sandboxes. */
  get state(): Readonly<DaemonState> {
    const view = this.#o.view;
    if (this.#cache?.revision === view.revision && this.#cache.sandboxes === this.#sandboxes) return this.#cache.state;
    const services = view.services().map((s) => serviceRecord(s, view.tasksOf(s.id).map((kv) => kv.value)));
    const state: DaemonState = { version: 1, networks: view.networks(), sandboxes: this.#sandboxes, services };
    this.#cache = { revision: view.revision, sandboxes: this.#sandboxes, state };
    return state;
  }

  /** Runs `fn` after every earlier change has finished. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  network(ref: string): NetworkRecord {
    return findNetwork(this.state, ref);
  }

  sandbox(ref: string): SandboxRecord {
    return findSandbox(this.state, ref);
  }

  /** Writes to the cluster store and waits until this node's view has it; false when a condition failed. */
  async write(conditions: readonly Condition[], ops: readonly Operation[]): Promise<boolean> {
    const r = await this.#o.store.txn(conditions, ops);
    if (r.succeeded) await this.#o.view.caughtUp(r.revision);
    return r.succeeded;
  }

  /** Puts and deletes this node's tasks (under its lease), answered once the view has them. */
  async writeTasks(put: readonly TaskObject[], remove: readonly string[], onlyNew = false): Promise<boolean> {
    const revision = await this.#o.saved.writeTasks(put, remove, onlyNew);
    if (revision === undefined) return false;
    await this.#o.view.caughtUp(revision);
    return true;
  }

  /** This node's gateway bridge, made the first time a sandbox needs it. */
  async #gatewayBridge(): Promise<NetworkRecord> {
    const have = this.state.networks.find((n) => n.name === GATEWAY_BRIDGE && n.scope === 'local');
    return have ?? this.#addNetwork(gatewayBridgeRequest, { dns: false, claim: true }, await hostFacts(this.#o.owner ?? 'tsnet'));
  }

  /** Deletes what node `name` (down for good) left in the store: see `nodeLeftovers`. */
  removeNode(name: string): Promise<void> {
    if (name === this.node) throw conflict(`node ${name} is this daemon's own`);
    return this.serial(async () => {
      const revision = await writeInChunks(this.#o.store, await nodeLeftovers(this.#o.store, name));
      await this.#o.view.caughtUp(revision);
    });
  }

  /** Every endpoint on network `id` in the cluster, whichever node runs it. */
  endpointsOn(id: string): EndpointObject[] {
    return this.#o.view.endpointsOn(id);
  }

  /**
   * The addresses every node's endpoints hold on a swarm network, as this node has seen them.
   * Planned around them, a new sandbox's claim loses only to a claim made since: before, every
   * create on etcd with 3 nodes lost its first claim to another node's endpoint and fell back to
   * reading every claim (the claim step 7.5 ms for the first 100 creates, 13.9 ms for 901–1000;
   * now one CAS, 2.8 ms throughout).
   */
  readonly takenElsewhere = (net: NetworkRecord): Iterable<string> =>
    net.scope !== 'swarm' ? [] : this.#o.view.endpointsOn(net.id).flatMap((e) => [e.ipv4, e.ipv6].filter((ip): ip is string => ip !== undefined));

  placedTasks(service: string): PlacedTask[] {
    return this.#o.view.tasksOf(service).flatMap(({ value: t, createRevision }) => (t.slot === undefined ? [] : [{ id: t.id, slot: t.slot, node: t.node, createRevision }]));
  }

  /** Brings the kernel in line with the stores (after a restart or kill -9) and starts every listener. */
  async restore(): Promise<void> {
    await this.serial(async () => {
      if (!this.state.networks.some((n) => n.name === 'bridge' && n.scope === 'local')) {
        const { device = 'tsnet0', subnet = '172.17.0.0/16' } = this.#o.defaultBridge ?? {};
        await this.#addNetwork({ name: 'bridge', subnet, options: { 'com.docker.network.bridge.name': device } }, { dns: false, claim: false });
      }
      await this.#reconcileNetworks();
      for (const sb of this.#sandboxes) {
        sb.ports = await this.#reserve(sb.ports ?? []).catch((err: Error) => {
          this.#o.logger.error({ sandbox: sb.name, err: err.message }, 'restore: a published port is taken; it stays unpublished');
          return [];
        });
      }
      for (const svc of this.state.services ?? []) {
        // Ports of services on an overlay are held where this node DNATs them (#holdOverlayPorts).
        if (svc.publish === undefined || svc.publish.length === 0 || this.state.networks.find((n) => n.name === svc.network)?.driver === 'overlay') continue;
        await this.#reserve(svc.publish).catch((err: Error) => {
          this.#o.logger.error({ service: svc.name, err: err.message }, 'restore: a published port is taken; it stays unpublished');
        });
      }
      await this.#firewall();
      // Names answer first: a listener needs only its namespace, which a restart finds in place;
      // the links are checked after (one whose namespace is gone gets its listener with its rewiring).
      const standing = this.#sandboxes.filter((sb) => sb.mode !== 'none' && ownNamespace(sb.mode) && existsSync(netnsPath(sb.netns!)));
      await this.#upkeep.converge(standing).catch(() => {});
      await forEachBounded(this.#sandboxes, RESTORE_PARALLEL, async (sb) => {
        try {
          await this.#wire(sb, this.#broken);
        } catch (err) {
          this.#o.logger.error({ sandbox: sb.name, err: (err as Error).message }, 'restore: sandbox could not be rewired');
        }
      });
      // Those whose namespace had to be made again get their files and resolver now.
      await this.#upkeep.converge().catch((err: Error) => this.#o.logger.error({ err: err.message }, 'restore: sandbox files or resolvers'));
      const stale = await this.#dp.removeStale(this.state);
      if (stale.length > 0) this.#o.logger.warn({ removed: stale }, 'restore: removed what the state no longer names');
      await this.#commit();
    });
    await this.replicas.resume();
  }

  /** Another node (or this one) changed what the cluster shares: a reconcile pass is queued, one at a time. */
  #changed(change: ViewChange): void {
    if (!change.relisted && change.networks.size === 0 && change.services.size === 0) return;
    if (this.#reconcileQueued) return;
    this.#reconcileQueued = true;
    void this.serial(async () => {
      this.#reconcileQueued = false;
      await this.#reconcile();
    }).catch((err: Error) => this.#o.logger.error({ err: err.message }, 'reconcile failed; the next change tries again'));
    this.replicas.changed();
  }

  /**
   * Brings this node's kernel to what its view says: networks made or removed, the firewall, the
   * VIP tables of its sandboxes, and its own tasks of services that are gone deleted. Safe to
   * repeat: what is already right is left as it is.
   */
  async #reconcile(): Promise<void> {
    await this.#reconcileNetworks();
    await this.#firewall();
    await balance(this.#sandboxes, this.state.services ?? [], this.vipBackend);
    await this.#ingressRules();
    const services = new Set((this.state.services ?? []).map((s) => s.id));
    const orphans = this.#o.saved.tasks().filter((t) => !services.has(t.service));
    if (orphans.length > 0) await this.writeTasks([], orphans.map((t) => taskKey(t.service, t.id)));
  }

  /** Makes each visible network this node has not made, and removes those that went; one that fails is reported and marked broken. */
  async #reconcileNetworks(): Promise<void> {
    const desired = new Map(this.state.networks.map((n) => [n.id, n]));
    for (const [id, net] of this.#realized) {
      if (desired.has(id)) continue;
      for (const sb of this.#sandboxes.filter((s) => net.name in s.attachments)) await this.#dp.detach(net, sb).catch(() => {});
      await this.#dp.deleteNetwork(net).catch((err: Error) => this.#o.logger.error({ network: net.name, err: err.message }, 'a removed network could not be deleted'));
      this.#realized.delete(id);
    }
    for (const [id, net] of desired) {
      if (this.#realized.has(id)) continue;
      try {
        await this.#dp.createNetwork(net);
        this.#realized.set(id, net);
        if (this.#broken.delete(net.name)) for (const sb of this.#sandboxes.filter((s) => net.name in s.attachments)) await this.#wire(sb);
      } catch (err) {
        this.#broken.add(net.name);
        this.#o.logger.error({ network: net.name, err: (err as Error).message }, 'network could not be restored in the kernel; its sandboxes are not attached to it');
      }
    }
  }

  /** A network from the API: checked against the host's interfaces and subnets too. */
  createNetwork(req: NetworkCreate): Promise<NetworkRecord> {
    return this.serial(async () => {
      if (req.name === GATEWAY_BRIDGE) throw forbidden(`${GATEWAY_BRIDGE} is made by tsnet for overlay sandboxes when it needs one`);
      return this.#addNetwork(req, { dns: true, claim: true }, await hostFacts(this.#o.owner ?? 'tsnet'));
    });
  }

  /**
   * Plans a network, claims its subnet and name in the store (one transaction: two nodes never
   * get one subnet), then makes it here. When the kernel refuses, the records go again.
   */
  /**
   * `dns`: names resolve on it. `claim`: its subnet is claimed in the store against every other
   * network's (all but the default bridge, which every node has at the same subnet).
   */
  async #addNetwork(req: NetworkCreate, { dns, claim }: { dns: boolean; claim: boolean }, host?: HostFacts): Promise<NetworkRecord> {
    const draft = planNetwork(this.state, req, dns, this.node, host);
    const net = await this.#claimNetwork(draft, req, host, claim);
    try {
      await this.#dp.createNetwork(net);
      this.#realized.set(net.id, net);
      await this.#firewall();
    } catch (err) {
      this.#realized.delete(net.id);
      await this.#dp.deleteNetwork(net).catch(() => {});
      await this.write([], await networkDeletes(this.#o.store, net)).catch(() => {});
      await this.#firewall().catch(() => {});
      throw err;
    }
    return net;
  }

  async #claimNetwork(draft: NetworkRecord, req: NetworkCreate, host: HostFacts | undefined, claim: boolean): Promise<NetworkRecord> {
    if (!claim || draft.ipam === null) {
      if (!(await this.write(networkClaims(draft), networkPuts(draft)))) await explainNetworkConflict(this.#o.store, draft);
      return draft;
    }
    let net = draft;
    const existing = this.#o.view.allNetworks().filter((n) => n.ipam !== null && n.id !== draft.id).map((n) => ({ network: n.name, subnet: n.ipam!.subnet }));
    try {
      await claimSubnet(this.#o.store, {
        network: draft.id,
        request: { ...(req.subnet === undefined ? {} : { subnet: req.subnet }), ...(req.gateway === undefined ? {} : { gateway: req.gateway }), ...(req.ipRange === undefined ? {} : { ipRange: req.ipRange }) },
        ...(req.subnet6 === undefined ? {} : { request6: { subnet: req.subnet6, ...(req.gateway6 === undefined ? {} : { gateway: req.gateway6 }) } }),
        host: host?.subnets ?? [],
        existing,
        commit: async (plan) => {
          // An overlay's VNI is claimed in the same transaction; one taken meanwhile is replaced by the next free.
          for (;;) {
            const vni = draft.driver === 'overlay' ? await freeVni(this.#o.store) : undefined;
            net = {
              ...draft,
              ipam: {
                subnet: plan.space.subnet,
                gateway: plan.space.gateway,
                ...(plan.space.ipRange === undefined ? {} : { ipRange: plan.space.ipRange }),
                ...(plan.space6 === undefined ? {} : { subnet6: plan.space6.subnet, gateway6: plan.space6.gateway }),
              },
              ...(vni === undefined ? {} : { vni, device: vxlanDevice(vni, draft.id) }),
            };
            if (await this.write([...plan.conditions, ...networkClaims(net)], [...plan.operations, ...networkPuts(net)])) return true;
            await explainNetworkConflict(this.#o.store, net);
            if (vni === undefined || (await this.#o.store.get(vniKey(vni))) === undefined) return false;
          }
        },
      });
    } catch (err) {
      if (err instanceof ApiError || err instanceof StoreUnavailableError) throw err;
      throw conflict((err as Error).message.replace(/^cluster\/ipam: (network [0-9a-f]{64}: )?/, ''));
    }
    return net;
  }

  /** What uses a network: this node's sandboxes, other nodes' endpoints and services (an empty list: it may go). */
  networkUsers(net: NetworkRecord): string[] {
    return [
      ...this.#sandboxes.filter((s) => net.name in s.attachments).map((s) => s.name),
      ...this.#o.view.endpointsOn(net.id).filter((e) => e.node !== this.node).map((e) => `${e.sandbox.name} on node ${e.node}`),
      ...(this.state.services ?? []).filter((s) => s.network === net.name).map((s) => `service ${s.name}`),
    ];
  }

  removeNetwork(ref: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(ref);
      if (net.name === 'bridge') throw forbidden('bridge is a pre-defined network and cannot be removed');
      const users = this.networkUsers(net);
      if (users.length > 0) throw forbidden(`error while removing network: network ${net.name} id ${net.id} has active endpoints (${users.join(', ')})`);
      await this.#dp.deleteNetwork(net);
      this.#realized.delete(net.id);
      await this.write([], await networkDeletes(this.#o.store, net));
      await this.#firewall();
    });
  }

  /**
   * Removes every user-defined network that nothing uses and `wanted` keeps; returns their names.
   * One that is taken (or removed) between the choice and its turn is skipped, as Docker does.
   */
  async pruneNetworks(wanted: (net: NetworkRecord) => boolean = () => true): Promise<string[]> {
    const unused = this.state.networks.filter((n) => n.name !== 'bridge' && wanted(n) && this.networkUsers(n).length === 0);
    const removed: string[] = [];
    for (const n of unused) {
      try {
        await this.removeNetwork(n.id);
        removed.push(n.name);
      } catch (err) {
        if (!(err instanceof ApiError && (err.status === 403 || err.status === 404))) throw err;
      }
    }
    return removed;
  }

  /** A sandbox; `replicaOf` marks one the replica manager makes for a service. */
  createSandbox(req: SandboxCreate, replicaOf?: string): Promise<SandboxRecord> {
    return this.serial(async () => {
      if (req.name === INGRESS_SANDBOX && replicaOf !== INGRESS_ROLE) throw forbidden(`${INGRESS_SANDBOX} is the routing mesh's sandbox, made by tsnet`);
      const sb = planSandbox(this.state, req, this.#o.netnsPrefix ?? 'tsnet-', this.takenElsewhere);
      if (replicaOf === undefined) for (const name of Object.keys(sb.attachments)) mayJoinByHand(this.network(name));
      else sb.replicaOf = replicaOf;
      if (needsGatewayBridge(this.state, sb)) attachRecord(this.state, sb, await this.#gatewayBridge(), { network: GATEWAY_BRIDGE });
      try {
        await this.#claimAddresses(sb, Object.keys(sb.attachments), req.networks ?? []);
        sb.ports = await this.#reserve(sb.ports ?? []);
        if (ownNamespace(sb.mode) && (await this.#dp.createNetns(sb.netns!, req.netns ?? (req.pid === undefined ? undefined : `/proc/${req.pid}/ns/net`)))) {
          vipTableIs(this.vipBackend, sb.id, 'empty');
        }
        this.#sandboxes = [...this.#sandboxes, sb];
        // Rules first (they match interface names, which need not exist yet): no moment without them.
        await this.#firewall();
        await this.#wire(sb);
      } catch (err) {
        await this.#teardown(sb).catch(() => {});
        this.#sandboxes = this.#sandboxes.filter((s) => s !== sb);
        vipTableIs(this.vipBackend, sb.id, 'unknown');
        this.releaseHostPorts(sb.ports ?? []);
        await this.#releaseAddresses(sb, Object.keys(sb.attachments)).catch(() => {});
        throw err;
      }
      try {
        await this.#commit([sb]);
      } catch (err) {
        // Stored, but its files or resolver could not be made (a port 53 taken in an adopted
        // namespace): a create that fails leaves nothing behind.
        if (err instanceof UpkeepError) await this.#remove(sb).catch(() => {});
        throw err;
      }
      return sb;
    });
  }

  removeSandbox(ref: string): Promise<void> {
    return this.serial(async () => {
      const sb = this.sandbox(ref);
      const sharers = this.#sandboxes.filter((s) => s.mode === `container:${sb.name}`).map((s) => s.name);
      if (sharers.length > 0) throw forbidden(`sandbox ${sb.name} shares its namespace with ${sharers.join(', ')}: remove them first`);
      await this.#remove(sb);
    });
  }

  async #remove(sb: SandboxRecord): Promise<void> {
    // A failed teardown keeps the record and its host ports: nobody else may take them while it stands.
    await this.#teardown(sb);
    this.#sandboxes = this.#sandboxes.filter((s) => s !== sb);
    vipTableIs(this.vipBackend, sb.id, 'unknown');
    this.releaseHostPorts(sb.ports ?? []);
    try {
      await this.#dropTasks(sb, Object.keys(sb.attachments));
      await this.#firewall();
      await this.#releaseAddresses(sb, Object.keys(sb.attachments));
    } finally {
      // The sandbox is gone from the kernel whatever else failed: so it goes from the store, whose
      // event takes its entry out of the hosts files that named it by --link.
      await this.#commit([sb]);
    }
  }

  /**
   * Makes `next` (the services as they are to be) real in this node's kernel first (the VIP
   * table of every sandbox on `network`, and the host firewall, whose published service ports
   * follow the serving tasks), then runs `write`. When the kernel refuses, or the write does,
   * what was there is put back.
   */
  async applyServices(next: ServiceRecord[], network: string, write: () => Promise<void>): Promise<void> {
    const before = this.state.services ?? [];
    const program = async (svcs: readonly ServiceRecord[]): Promise<void> => {
      await balance(this.#sandboxes.filter((s) => network in s.attachments), svcs, this.vipBackend);
      await this.#firewall(svcs);
    };
    try {
      await program(next);
      await write();
    } catch (err) {
      await program(before).catch(() => {});
      throw err;
    }
  }

  /** Holds host ports for a service's --publish (as for sandboxes); releases them with `releaseHostPorts`. */
  reserveHostPorts(ports: readonly PortMapping[]): Promise<PortMapping[]> {
    return this.#reserve(ports);
  }

  releaseHostPorts(ports: readonly PortMapping[]): void {
    for (const p of ports) this.#ports.release(p);
  }

  /**
   * Hands ports reserved for a new service on an overlay to #holdOverlayPorts, which keeps them
   * only if this node DNATs them (a mode=host port with no task here is let go).
   */
  adoptOverlayPorts(ports: readonly PortMapping[]): void {
    for (const p of ports) this.#overlayHeld.set(PortReservations.key(p), p);
  }

  readonly #overlayHeld = new Map<string, HostPort>();

  /**
   * Holds the host ports this node DNATs for services on overlays, as docker-proxy holds a
   * published port: the mesh's on every node, mode=host's only where a task serves; lets go of
   * the rest. A port something else holds is logged: the DNAT takes its outside traffic anyway.
   */
  async #holdOverlayPorts(rules: readonly HostPort[]): Promise<void> {
    const wanted = new Map(rules.filter((r) => r.hostPort > 0).map((r) => [PortReservations.key(r), r] as const));
    for (const [key, m] of this.#overlayHeld) {
      if (wanted.has(key)) continue;
      this.#ports.release(m);
      this.#overlayHeld.delete(key);
    }
    for (const [key, r] of wanted) {
      if (this.#overlayHeld.has(key)) continue;
      const m: HostPort = { hostIp: r.hostIp, hostPort: r.hostPort, protocol: r.protocol };
      try {
        if (!this.#ports.holds(m)) await this.#ports.reserve(m);
        this.#overlayHeld.set(key, m);
      } catch (err) {
        this.#o.logger.error({ port: key, err: (err as Error).message }, 'a port an overlay service publishes is held by another program');
      }
    }
  }

  /** The kernel rules that implement a network (shown by `network inspect`). */
  rules(ref: string): Promise<string[]> {
    return this.#dp.listRules(this.#o.nftTable ?? 'tsnet', this.network(ref).name);
  }

  /**
   * On a swarm network an address is the cluster's: the one planned for each attachment is
   * claimed by a CAS create, and one another node holds is traded for a free one (a requested
   * one is refused instead). A local network's addresses are its node's, planned in memory.
   */
  async #claimAddresses(sb: SandboxRecord, networks: readonly string[], requests: readonly AttachRequest[]): Promise<void> {
    for (const name of networks) {
      const net = this.network(name);
      const att = sb.attachments[name];
      if (net.scope !== 'swarm' || att?.ipv4 === undefined || net.ipam === null) continue;
      att.ipv4 = await this.claimAddress(net, att.ipv4, `sandbox ${sb.name} on node ${this.node}`, requests.find((r) => r.network === name || r.network === net.id)?.ip !== undefined);
    }
  }

  /** Claims `ip` on a swarm network for `holder` (or the next free one when another holds it and it was not asked for). */
  async claimAddress(net: NetworkRecord, ip: string, holder: string, requested: boolean): Promise<string> {
    if (net.scope !== 'swarm' || net.ipam === null) return ip;
    const claim: AddressClaim = { holder, node: this.node };
    if (await create(this.#o.store, addressKey(net.id, ip), claim)) return ip;
    if (requested) throw conflict(`address ${ip} on network ${net.name} is in use`);
    try {
      return await claimAddress(this.#o.store, { networkId: net.id, space: addressSpace(net), holder, node: this.node });
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw badRequest((err as Error).message.replace(/^cluster\/ipam: /, ''));
    }
  }

  async #releaseAddresses(sb: SandboxRecord, networks: readonly string[]): Promise<void> {
    const ops = networks.flatMap((name): Operation[] => {
      const net = this.state.networks.find((n) => n.name === name);
      const ip = sb.attachments[name]?.ipv4;
      return net?.scope === 'swarm' && ip !== undefined ? [{ op: 'delete', key: addressKey(net.id, ip) }] : [];
    });
    if (ops.length > 0) await this.#o.store.txn([], ops);
  }

  /** A sandbox that leaves networks stops being a task of the services on them; their VIPs are re-balanced. */
  async #dropTasks(sb: SandboxRecord, networks: readonly string[]): Promise<void> {
    const services = this.state.services ?? [];
    const touched = services.filter((s) => networks.includes(s.network) && s.tasks.some((t) => t.sandbox === sb.name && t.node === this.node));
    if (touched.length === 0) return;
    const gone = touched.flatMap((s) => s.tasks.filter((t) => t.sandbox === sb.name && t.node === this.node).map((t) => taskKey(s.id, t.id)));
    await this.writeTasks([], gone);
    const nets = new Set(touched.map((s) => s.network));
    await balance(this.#sandboxes.filter((s) => Object.keys(s.attachments).some((n) => nets.has(n))), this.state.services ?? [], this.vipBackend);
  }

  /** Holds each host port (allocating free ones); on a clash releases what it took and throws. */
  async #reserve(ports: readonly PortMapping[]): Promise<PortMapping[]> {
    const done: PortMapping[] = [];
    try {
      for (const p of ports) done.push(await this.#ports.reserve(p));
    } catch (err) {
      for (const p of done) this.#ports.release(p);
      throw badRequest((err as Error).message);
    }
    return done;
  }

  connect(netRef: string, sbRef: string, req: Omit<AttachRequest, 'network'>): Promise<void> {
    return this.serial(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (sb.mode !== 'networks') throw badRequest(`sandbox ${sb.name} uses ${sb.mode} networking and cannot join networks`);
      if (net.name in sb.attachments) throw conflict(`sandbox ${sb.name} is already connected to network ${net.name}`);
      if (sb.replicaOf === undefined) mayJoinByHand(net);
      attachRecord(this.state, sb, net, { network: net.name, ...req }, this.takenElsewhere);
      const gateway = needsGatewayBridge(this.state, sb) && !(GATEWAY_BRIDGE in sb.attachments) ? await this.#gatewayBridge() : undefined;
      if (gateway !== undefined) attachRecord(this.state, sb, gateway, { network: GATEWAY_BRIDGE });
      const added = [net, ...(gateway === undefined ? [] : [gateway])];
      try {
        await this.#claimAddresses(sb, [net.name], [{ network: net.name, ...req }]);
        await this.#firewall();
        for (const n of added) await this.#dp.attach(n, sb, defaultRouteNetwork(sb) === n.name);
        await balance([sb], this.state.services ?? [], this.vipBackend);
      } catch (err) {
        for (const n of added) await this.#dp.detach(n, sb).catch(() => {});
        await this.#releaseAddresses(sb, [net.name]).catch(() => {});
        for (const n of added) delete sb.attachments[n.name];
        await this.#firewall().catch(() => {});
        throw err;
      }
      await this.#commit([sb]);
    });
  }

  disconnect(netRef: string, sbRef: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (!(net.name in sb.attachments)) throw notFound(`sandbox ${sb.name} is not connected to network ${net.name}`);
      if (net.name === GATEWAY_BRIDGE) throw forbidden(`${GATEWAY_BRIDGE} goes with the sandbox's last overlay network`);
      await this.#dp.detach(net, sb);
      await this.#dropTasks(sb, [net.name]);
      await this.#releaseAddresses(sb, [net.name]);
      delete sb.attachments[net.name];
      // Its last overlay gone (or a bridge with a way out joined meanwhile): the gateway bridge goes too.
      if (GATEWAY_BRIDGE in sb.attachments && !needsGatewayBridge(this.state, sb)) {
        await this.#dp.detach(this.network(GATEWAY_BRIDGE), sb);
        delete sb.attachments[GATEWAY_BRIDGE];
      }
      await this.#firewall();
      await balance([sb], this.state.services ?? [], this.vipBackend);
      await this.#commit([sb]);
    });
  }

  /** Wires a sandbox whose namespace exists: links (but to `skip`) and VIPs; its files and resolver follow its stored record (SandboxUpkeep). Safe to repeat. */
  async #wire(sb: SandboxRecord, skip: ReadonlySet<string> = new Set()): Promise<void> {
    if (!this.#sandboxes.includes(sb) || !ownNamespace(sb.mode)) return;
    if (sb.ownsNetns) await this.#dp.createNetns(sb.netns!);
    if (sb.mode === 'none') {
      return this.#dp.loopbackUp(sb.netns!);
    }
    const nets = Object.keys(sb.attachments).map((n) => this.network(n));
    for (const net of nets) if (!skip.has(net.name)) await this.#dp.attach(net, sb, defaultRouteNetwork(sb) === net.name);
    await balance([sb], this.state.services ?? [], this.vipBackend);
    if (sb.replicaOf === INGRESS_ROLE) await this.#ingressRules();
  }

  async #teardown(sb: SandboxRecord): Promise<void> {
    const errors: Error[] = [];
    const step = async (fn: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err as Error);
      }
    };
    await step(() => this.#upkeep.close(sb));
    for (const net of Object.keys(sb.attachments)) {
      const rec = this.state.networks.find((n) => n.name === net);
      if (rec !== undefined) await step(() => this.#dp.detach(rec, sb));
    }
    if (ownNamespace(sb.mode)) {
      await step(() => this.#dp.deleteNetns(sb.netns!, sb.ownsNetns));
      await step(() => this.#upkeep.removeFiles(sb));
    }
    if (errors.length > 0) throw new AggregateError(errors, `removing sandbox ${sb.name}: ${errors.map((e) => e.message).join('; ')}`);
  }

  /** The firewall for the networks made here and the ports published by this node's sandboxes and the services. */
  async #firewall(services: readonly ServiceRecord[] = this.state.services ?? []): Promise<void> {
    const networks = [...this.#realized.values()];
    const gateway = networks.find((n) => n.name === GATEWAY_BRIDGE)?.device;
    const overlayPorts = [
      ...hostIngressPorts(meshServices(services, this.state.networks), this.#ingressSandbox(), gateway),
      ...hostModePorts(services, this.state.networks, this.#sandboxes, this.node, gateway),
    ];
    await this.#holdOverlayPorts(overlayPorts);
    return this.#dp.applyFirewall(this.#o.nftTable ?? 'tsnet', networks, this.#sandboxes, [...publishRules(networks, this.#sandboxes, services), ...overlayPorts]);
  }

  #ingressSandbox(): SandboxRecord | undefined {
    return this.#sandboxes.find((s) => s.replicaOf === INGRESS_ROLE);
  }

  /** The mesh's DNAT in this node's ingress sandbox, over every node's serving tasks; applied when it changed. */
  async #ingressRules(): Promise<void> {
    const sbox = this.#ingressSandbox();
    const ingress = this.state.networks.find((n) => n.name === INGRESS_NETWORK);
    const att = ingress === undefined ? undefined : sbox?.attachments[ingress.name];
    if (sbox === undefined || ingress === undefined || att === undefined) return;
    const endpoints = this.#o.view.endpointsOn(ingress.id);
    const ports = ingressPorts(meshServices(this.state.services ?? [], this.state.networks), (sandbox, node) => endpoints.find((e) => e.sandbox.name === sandbox && e.node === node)?.ipv4);
    const ruleset = renderIngressTable(INGRESS_TABLE, att.ifname, ports);
    // Keyed by the sandbox: one made again (after the last mesh service went) starts with no table.
    if (this.#ingressApplied?.sandbox === sbox.id && this.#ingressApplied.ruleset === ruleset) return;
    inNetns(netnsPath(sbox.netns!), () => writeFileSync('/proc/sys/net/ipv4/ip_forward', '1'));
    await nftApply(ruleset, sbox.netns!);
    this.#ingressApplied = { sandbox: sbox.id, ruleset };
  }

  #ingressApplied: { sandbox: string; ruleset: string } | undefined;

  /** The routing mesh's `ingress` overlay (see ingress.ts), made the first time a service publishes through it. */
  async ingressNetwork(): Promise<NetworkRecord> {
    for (let i = 0; ; i++) {
      const have = this.state.networks.find((n) => n.name === INGRESS_NETWORK);
      if (have !== undefined) return have;
      if (i === 50) throw conflict(`network ${INGRESS_NETWORK} is held by a name this node cannot see`);
      try {
        return await this.#addNetwork(ingressRequest, { dns: false, claim: true });
      } catch (err) {
        // Another node made it first: it reaches this node's view shortly.
        if (!(err instanceof ApiError) || !/already exists/.test(err.message)) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * Writes this node's sandboxes to the store; they reach the registry through the view, and the
   * call returns once they have: on disk before anyone sees it, seen before the caller is told.
   * `touched` names the sandboxes the change made, edited or removed; without it every sandbox
   * is compared. The reconcilers that follow the view have run when it returns: the sandboxes'
   * files and resolvers too, whose file hashes (this host's alone) are then saved beside them.
   */
  async #commit(touched?: readonly SandboxRecord[]): Promise<void> {
    const ids = touched?.map((sb) => sb.id);
    await this.#o.view.caughtUp(await this.#o.saved.save(this.#sandboxes, this.state.networks, ids));
    await this.#o.settled?.();
    try {
      await this.#upkeep.settled(ids ?? []);
    } finally {
      await this.#o.saved.save(this.#sandboxes, this.state.networks, ids);
    }
  }
}
