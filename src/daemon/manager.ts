import type { Logger } from 'pino';
import { nftVipBackend, type VipBackend } from '../net/lb/backend.js';
import { hostFacts, type HostFacts } from '../net/link/host.js';
import { PortReservations } from '../net/ports/reservations.js';
import type { PortMapping } from '../net/ports/spec.js';
import { removeSandboxFiles, writeSandboxFiles } from '../netns/sandbox-files.js';
import type { DnsServer } from '../server/server.js';
import type { DaemonCore } from './core.js';
import { dataplane, filesDir, type Dataplane } from './dataplane.js';
import { badRequest, conflict, forbidden, notFound } from './errors.js';
import { attachRecord, findNetwork, findSandbox, ownNamespace, planNetwork, planSandbox } from './plan.js';
import { publishRules, sandboxFiles } from './projection.js';
import { Replicas } from './replicas.js';
import type { AttachRequest, NetworkCreate, SandboxCreate } from './requests.js';
import { SandboxResolvers } from './sandbox-resolvers.js';
import { balance, ServiceManager } from './service-manager.js';
import type { ServiceRecord } from './services.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';
import type { RegistryFeed } from '../reconcile/registry-feed.js';
import type { SavedState } from './saved-state.js';


export interface ManagerOptions {
  /** Where the state is written, and what it held at start. */
  saved: SavedState;
  state: DaemonState;
  /** The daemon's state directory (namespace intents, the owner mark). */
  stateDir: string;
  /** Feeds the registry from the store; a change is answered once the feed has it. */
  feed: RegistryFeed;
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
}

/**
 * The control plane: validates a change, makes it in the kernel, persists it, then projects it
 * into the registry (which the resolvers read). A failed change is rolled back and nothing of it
 * is saved. Changes run one at a time.
 */
export class Manager implements DaemonCore {
  readonly #o: ManagerOptions;
  readonly #dp: Dataplane;
  #state: DaemonState;
  readonly #resolvers: SandboxResolvers;
  readonly #ports = new PortReservations();
  /** Services and their tasks, through this manager's queue and store. */
  readonly services = new ServiceManager(this);
  readonly replicas: Replicas;
  readonly vipBackend: VipBackend;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ManagerOptions) {
    this.#o = options;
    this.#dp = dataplane(options.owner ?? 'tsnet', options.stateDir);
    this.replicas = new Replicas(this, options.logger.child({ part: 'replicas' }));
    this.vipBackend = options.vipBackend ?? nftVipBackend;
    this.#resolvers = new SandboxResolvers(options.dns, () => this.#state);
    this.#state = options.state;
  }

  get state(): Readonly<DaemonState> {
    return this.#state;
  }

  /** Runs `fn` after every earlier change has finished. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  network(ref: string): NetworkRecord {
    return findNetwork(this.#state, ref);
  }

  sandbox(ref: string): SandboxRecord {
    return findSandbox(this.#state, ref);
  }

  /** Brings the kernel in line with the saved state (after a restart or kill -9) and starts every listener. */
  async restore(): Promise<void> {
    if (!this.#state.networks.some((n) => n.name === 'bridge')) {
      const { device = 'tsnet0', subnet = '172.17.0.0/16' } = this.#o.defaultBridge ?? {};
      await this.#addNetwork({ name: 'bridge', subnet, options: { 'com.docker.network.bridge.name': device } }, false);
    }
    const broken = await this.#restoreNetworks();
    for (const sb of this.#state.sandboxes) {
      sb.ports = await this.#reserve(sb.ports ?? []).catch((err: Error) => {
        this.#o.logger.error({ sandbox: sb.name, err: err.message }, 'restore: a published port is taken; it stays unpublished');
        return [];
      });
    }
    for (const svc of this.#state.services ?? []) {
      svc.publish = await this.#reserve(svc.publish ?? []).catch((err: Error) => {
        this.#o.logger.error({ service: svc.name, err: err.message }, 'restore: a published port is taken; it stays unpublished');
        return [];
      });
    }
    await this.#firewall(this.#state.networks);
    for (const sb of this.#state.sandboxes) {
      try {
        await this.#wire(sb, broken);
      } catch (err) {
        this.#o.logger.error({ sandbox: sb.name, err: (err as Error).message }, 'restore: sandbox could not be rewired');
      }
    }
    const stale = await this.#dp.removeStale(this.#state, this.#o.netnsPrefix ?? 'tsnet-');
    if (stale.length > 0) this.#o.logger.warn({ removed: stale }, 'restore: removed what the state no longer names');
    await this.#commit();
    await this.replicas.resume();
  }

  /**
   * Brings each network back on its own: one that cannot be (its parent interface is gone, its
   * bridge name taken) is reported and keeps its record, and the rest come back. Returns the
   * names of those that failed, which sandboxes are then not wired to.
   */
  async #restoreNetworks(): Promise<Set<string>> {
    const broken = new Set<string>();
    for (const net of this.#state.networks) {
      try {
        await this.#dp.createNetwork(net);
      } catch (err) {
        broken.add(net.name);
        this.#o.logger.error({ network: net.name, err: (err as Error).message }, 'restore: network could not be restored; its sandboxes are not attached to it');
      }
    }
    return broken;
  }

  /** A network from the API: checked against the host's interfaces and subnets too. */
  createNetwork(req: NetworkCreate): Promise<NetworkRecord> {
    return this.serial(async () => this.#addNetwork(req, true, await hostFacts(this.#o.owner ?? 'tsnet')));
  }

  async #addNetwork(req: NetworkCreate, dns: boolean, host?: HostFacts): Promise<NetworkRecord> {
    const net = planNetwork(this.#state, req, dns, host);
    try {
      await this.#dp.createNetwork(net);
      await this.#firewall([...this.#state.networks, net]);
    } catch (err) {
      await this.#dp.deleteNetwork(net).catch(() => {});
      await this.#firewall(this.#state.networks).catch(() => {});
      throw err;
    }
    this.#state = { ...this.#state, networks: [...this.#state.networks, net] };
    await this.#commit([]);
    return net;
  }

  removeNetwork(ref: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(ref);
      if (net.name === 'bridge') throw forbidden('bridge is a pre-defined network and cannot be removed');
      const users = [
        ...this.#state.sandboxes.filter((s) => net.name in s.attachments).map((s) => s.name),
        ...(this.#state.services ?? []).filter((s) => s.network === net.name).map((s) => `service ${s.name}`),
      ];
      if (users.length > 0) throw forbidden(`error while removing network: network ${net.name} id ${net.id} has active endpoints (${users.join(', ')})`);
      await this.#dp.deleteNetwork(net);
      const rest = this.#state.networks.filter((n) => n !== net);
      await this.#firewall(rest);
      this.#state = { ...this.#state, networks: rest };
      await this.#commit([]);
    });
  }

  /** Removes every user-defined network no sandbox uses; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const unused = this.#state.networks.filter(
      (n) => n.name !== 'bridge' && !this.#state.sandboxes.some((s) => n.name in s.attachments) && !(this.#state.services ?? []).some((s) => s.network === n.name),
    );
    for (const n of unused) await this.removeNetwork(n.id);
    return unused.map((n) => n.name);
  }

  /** A sandbox; `replicaOf` marks one the replica manager makes for a service. */
  createSandbox(req: SandboxCreate, replicaOf?: string): Promise<SandboxRecord> {
    return this.serial(async () => {
      const sb = planSandbox(this.#state, req, this.#o.netnsPrefix ?? 'tsnet-');
      if (replicaOf !== undefined) sb.replicaOf = replicaOf;
      try {
        sb.ports = await this.#reserve(sb.ports ?? []);
        if (ownNamespace(sb.mode)) await this.#dp.createNetns(sb.netns!, req.netns ?? (req.pid === undefined ? undefined : `/proc/${req.pid}/ns/net`));
        this.#state = { ...this.#state, sandboxes: [...this.#state.sandboxes, sb] };
        // Rules first (they match interface names, which need not exist yet): no moment without them.
        await this.#firewall(this.#state.networks);
        await this.#wire(sb);
      } catch (err) {
        await this.#teardown(sb).catch(() => {});
        this.#state = { ...this.#state, sandboxes: this.#state.sandboxes.filter((s) => s !== sb) };
        this.releaseHostPorts(sb.ports ?? []);
        throw err;
      }
      await this.#commit([sb]);
      return sb;
    });
  }

  removeSandbox(ref: string): Promise<void> {
    return this.serial(async () => {
      const sb = this.sandbox(ref);
      const sharers = this.#state.sandboxes.filter((s) => s.mode === `container:${sb.name}`).map((s) => s.name);
      if (sharers.length > 0) throw forbidden(`sandbox ${sb.name} shares its namespace with ${sharers.join(', ')}: remove them first`);
      // A failed teardown keeps the record and its host ports: nobody else may take them while it stands.
      await this.#teardown(sb);
      this.#state = { ...this.#state, sandboxes: this.#state.sandboxes.filter((s) => s !== sb) };
      this.releaseHostPorts(sb.ports ?? []);
      try {
        await this.#dropTasks(sb, Object.keys(sb.attachments));
        await this.#firewall(this.#state.networks);
      } finally {
        // The sandbox is gone from the kernel whatever the re-render did: so it goes from the state.
        await this.#commit([sb]);
      }
    });
  }

  /** Replaces the services where the kernel has nothing to change (a replica count), and persists them. */
  async setServices(services: ServiceRecord[]): Promise<void> {
    this.#state = { ...this.#state, services };
    await this.#commit([]);
  }

  /**
   * Makes `services` real in the kernel first (the VIP table of every sandbox on `network`, and
   * the host firewall, whose published service ports follow the serving tasks), then saves them.
   * When the kernel refuses, what was there is put back and nothing is saved.
   */
  async applyServices(services: ServiceRecord[], network: string): Promise<void> {
    const before = this.#state.services ?? [];
    const program = async (svcs: readonly ServiceRecord[]): Promise<void> => {
      await balance(this.#state.sandboxes.filter((s) => network in s.attachments), svcs, this.vipBackend);
      await this.#firewall(this.#state.networks, this.#state.sandboxes, svcs);
    };
    try {
      await program(services);
    } catch (err) {
      await program(before).catch(() => {});
      throw err;
    }
    await this.setServices(services);
  }

  /** Holds host ports for a service's --publish (as for sandboxes); releases them with `releaseHostPorts`. */
  reserveHostPorts(ports: readonly PortMapping[]): Promise<PortMapping[]> {
    return this.#reserve(ports);
  }

  releaseHostPorts(ports: readonly PortMapping[]): void {
    for (const p of ports) this.#ports.release(p);
  }

  /** The kernel rules that implement a network (shown by `network inspect`). */
  rules(ref: string): Promise<string[]> {
    return this.#dp.listRules(this.#o.nftTable ?? 'tsnet', this.network(ref).name);
  }

  /** A sandbox that leaves networks stops being a task of the services on them; their VIPs are re-balanced. */
  async #dropTasks(sb: SandboxRecord, networks: readonly string[]): Promise<void> {
    const services = this.#state.services ?? [];
    const touched = services.filter((s) => networks.includes(s.network) && s.tasks.some((t) => t.sandbox === sb.name));
    if (touched.length === 0) return;
    this.#state = { ...this.#state, services: services.map((s) => (touched.includes(s) ? { ...s, tasks: s.tasks.filter((t) => t.sandbox !== sb.name) } : s)) };
    const nets = new Set(touched.map((s) => s.network));
    await balance(this.#state.sandboxes.filter((s) => Object.keys(s.attachments).some((n) => nets.has(n))), this.#state.services ?? [], this.vipBackend);
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
      attachRecord(this.#state, sb, net, { network: net.name, ...req });
      try {
        await this.#firewall(this.#state.networks);
        await this.#dp.attach(net, sb, Object.keys(sb.attachments).length === 1);
        await balance([sb], this.#state.services ?? [], this.vipBackend);
      } catch (err) {
        await this.#dp.detach(net, sb).catch(() => {});
        delete sb.attachments[net.name];
        await this.#firewall(this.#state.networks).catch(() => {});
        throw err;
      }
      this.#files(sb);
      await this.#commit([sb]);
    });
  }

  disconnect(netRef: string, sbRef: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (!(net.name in sb.attachments)) throw notFound(`sandbox ${sb.name} is not connected to network ${net.name}`);
      await this.#dp.detach(net, sb);
      delete sb.attachments[net.name];
      await this.#dropTasks(sb, [net.name]);
      await this.#firewall(this.#state.networks);
      await balance([sb], this.#state.services ?? [], this.vipBackend);
      this.#files(sb);
      await this.#commit([sb]);
    });
  }

  /** Wires a sandbox whose namespace exists: links (but to `skip`), files, its resolver. Safe to repeat. */
  async #wire(sb: SandboxRecord, skip: ReadonlySet<string> = new Set()): Promise<void> {
    if (!this.#state.sandboxes.includes(sb) || !ownNamespace(sb.mode)) return;
    if (sb.ownsNetns) await this.#dp.createNetns(sb.netns!);
    if (sb.mode === 'none') {
      await this.#dp.loopbackUp(sb.netns!);
      this.#files(sb);
      return;
    }
    const nets = Object.keys(sb.attachments).map((n) => this.network(n));
    for (const [i, net] of nets.entries()) if (!skip.has(net.name)) await this.#dp.attach(net, sb, i === 0);
    this.#files(sb);
    await balance([sb], this.#state.services ?? [], this.vipBackend);
    await this.#resolvers.open(sb);
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
    await step(() => this.#resolvers.close(sb));
    for (const net of Object.keys(sb.attachments)) {
      const rec = this.#state.networks.find((n) => n.name === net);
      if (rec !== undefined) await step(() => this.#dp.detach(rec, sb));
    }
    if (ownNamespace(sb.mode)) {
      await step(() => this.#dp.deleteNetns(sb.netns!, sb.ownsNetns));
      await step(() => removeSandboxFiles(filesDir(sb.netns!)));
    }
    if (errors.length > 0) throw new AggregateError(errors, `removing sandbox ${sb.name}: ${errors.map((e) => e.message).join('; ')}`);
  }

  /** The firewall for `networks` and the ports published by the sandboxes and services in the state. */
  #firewall(networks: readonly NetworkRecord[], sandboxes: readonly SandboxRecord[] = this.#state.sandboxes, services: readonly ServiceRecord[] = this.#state.services ?? []): Promise<void> {
    return this.#dp.applyFirewall(this.#o.nftTable ?? 'tsnet', networks, sandboxes, publishRules(networks, sandboxes, services));
  }

  #files(sb: SandboxRecord): void {
    sb.fileHashes = writeSandboxFiles(filesDir(sb.netns!), sandboxFiles(this.#state, sb, this.#o.hostSearch), sb.fileHashes);
  }

  /**
   * Writes the change to the store; it reaches the registry through the store's events, and
   * the call returns once it has: on disk before anyone sees it, seen before the caller is told.
   * `touched` names the sandboxes the change made, edited or removed (none for a network or
   * service change); without it every sandbox is compared.
   */
  async #commit(touched?: readonly SandboxRecord[]): Promise<void> {
    await this.#o.feed.caughtUp(await this.#o.saved.save(this.#state, touched?.map((sb) => sb.id)));
  }
}
