import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { allocateAddress, planSubnet, type AddressSpace } from '../net/ipam/ipam.js';
import { removeSandboxFiles, writeSandboxFiles } from '../netns/sandbox-files.js';
import type { Registry } from '../registry/registry.js';
import type { DnsServer, Listener } from '../server/server.js';
import { parseUpstream, type Upstream } from '../server/upstreams.js';
import { dataplane, filesDir, hostIfName, netnsPath, type Dataplane } from './dataplane.js';
import { badRequest, conflict, forbidden, notFound } from './errors.js';
import { dnsScope, sandboxFiles, toRecords } from './projection.js';
import type { AttachRequest, NetworkCreate, SandboxCreate } from './requests.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';
import type { FileStore } from './store.js';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const newId = (): string => randomBytes(32).toString('hex');
/** Modes whose sandbox has a namespace (and files) of its own; host and container: share one. */
const ownNamespace = (mode: SandboxRecord['mode']): boolean => mode === 'networks' || mode === 'none';

export interface ManagerOptions {
  store: FileStore;
  registry: Registry;
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
  /** Marks the links this daemon makes (their alias); default derived from nothing, `tsnet`. */
  owner?: string;
}

/**
 * The control plane: validates a change, makes it in the kernel, persists it, then projects it
 * into the registry (which the resolvers read). A failed change is rolled back and nothing of it
 * is saved. Changes run one at a time.
 */
export class Manager {
  readonly #o: ManagerOptions;
  readonly #dp: Dataplane;
  #state: DaemonState;
  readonly #listeners = new Map<string, Listener>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ManagerOptions) {
    this.#o = options;
    this.#dp = dataplane(options.owner ?? 'tsnet');
    this.#state = options.store.load();
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
    const net = this.#state.networks.find((n) => n.name === ref || n.id === ref) ?? this.#state.networks.find((n) => ref.length >= 3 && n.id.startsWith(ref));
    if (net === undefined) throw notFound(`network ${ref} not found`);
    return net;
  }

  sandbox(ref: string): SandboxRecord {
    const sb = this.#state.sandboxes.find((s) => s.name === ref || s.id === ref) ?? this.#state.sandboxes.find((s) => ref.length >= 3 && s.id.startsWith(ref));
    if (sb === undefined) throw notFound(`sandbox ${ref} not found`);
    return sb;
  }

  /** Brings the kernel in line with the saved state (after a restart or kill -9) and starts every listener. */
  async restore(): Promise<void> {
    if (!this.#state.networks.some((n) => n.name === 'bridge')) {
      const { device = 'tsnet0', subnet = '172.17.0.0/16' } = this.#o.defaultBridge ?? {};
      await this.#addNetwork({ name: 'bridge', subnet, options: { 'com.docker.network.bridge.name': device } }, false);
    }
    for (const net of this.#state.networks) await this.#dp.createNetwork(net);
    await this.#firewall(this.#state.networks);
    for (const sb of this.#state.sandboxes) {
      try {
        await this.#wire(sb);
      } catch (err) {
        this.#o.logger.error({ sandbox: sb.name, err: (err as Error).message }, 'restore: sandbox could not be rewired');
      }
    }
    const stale = await this.#dp.removeStale(this.#state, this.#o.netnsPrefix ?? 'tsnet-');
    if (stale.length > 0) this.#o.logger.warn({ removed: stale }, 'restore: removed what the state no longer names');
    this.#commit();
  }

  createNetwork(req: NetworkCreate): Promise<NetworkRecord> {
    return this.serial(() => this.#addNetwork(req, true));
  }

  async #addNetwork(req: NetworkCreate, dns: boolean): Promise<NetworkRecord> {
    if (typeof req.name !== 'string' || !NAME.test(req.name)) throw badRequest(`invalid network name ${JSON.stringify(req.name)}: letters, digits, '_', '.', '-'`);
    if (this.#state.networks.some((n) => n.name === req.name)) throw conflict(`network with name ${req.name} already exists`);
    if (req.name === 'host' || req.name === 'none') throw forbidden(`${req.name} is a pre-defined network mode and cannot be created`);
    const driver = req.driver ?? 'bridge';
    if (driver !== 'bridge') throw badRequest(`driver ${JSON.stringify(driver)} is not supported here (bridge)`);
    const mtu = Number(req.options?.['com.docker.network.driver.mtu'] ?? 1500);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw badRequest(`mtu ${req.options?.['com.docker.network.driver.mtu']} is not between 576 and 65535`);
    const spaces = this.#state.networks.filter((n) => n.ipam !== null).map((n): AddressSpace => ({ network: n.name, subnet: n.ipam!.subnet }));
    const spaces6 = this.#state.networks.filter((n) => n.ipam?.subnet6 !== undefined).map((n): AddressSpace => ({ network: n.name, subnet: n.ipam!.subnet6! }));
    let ipam;
    try {
      const v4 = planSubnet(req.name, { subnet: req.subnet, gateway: req.gateway, ipRange: req.ipRange }, spaces);
      const v6 = req.subnet6 === undefined ? undefined : planSubnet(req.name, { subnet: req.subnet6, gateway: req.gateway6 }, spaces6);
      ipam = { subnet: v4.subnet, gateway: v4.gateway, ...(v4.ipRange === undefined ? {} : { ipRange: v4.ipRange }), ...(v6 === undefined ? {} : { subnet6: v6.subnet, gateway6: v6.gateway }) };
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    const id = newId();
    const device = req.options?.['com.docker.network.bridge.name'] ?? `tsbr-${id.slice(0, 10)}`;
    if (device.length > 15) throw badRequest(`bridge name ${device} is longer than 15 characters`);
    const net: NetworkRecord = {
      id,
      name: req.name,
      driver: 'bridge',
      created: new Date().toISOString(),
      internal: req.internal === true,
      dns,
      ipam,
      device,
      mtu,
      labels: req.labels ?? {},
      options: req.options ?? {},
    };
    try {
      await this.#dp.createNetwork(net);
      await this.#firewall([...this.#state.networks, net]);
    } catch (err) {
      await this.#dp.deleteNetwork(net).catch(() => {});
      await this.#firewall(this.#state.networks).catch(() => {});
      throw err;
    }
    this.#state = { ...this.#state, networks: [...this.#state.networks, net] };
    this.#commit();
    return net;
  }

  removeNetwork(ref: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(ref);
      if (net.name === 'bridge') throw forbidden('bridge is a pre-defined network and cannot be removed');
      const users = this.#state.sandboxes.filter((s) => net.name in s.attachments).map((s) => s.name);
      if (users.length > 0) throw forbidden(`error while removing network: network ${net.name} id ${net.id} has active endpoints (${users.join(', ')})`);
      await this.#dp.deleteNetwork(net);
      const rest = this.#state.networks.filter((n) => n !== net);
      await this.#firewall(rest);
      this.#state = { ...this.#state, networks: rest };
      this.#commit();
    });
  }

  /** Removes every user-defined network no sandbox uses; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const unused = this.#state.networks.filter((n) => n.name !== 'bridge' && !this.#state.sandboxes.some((s) => n.name in s.attachments));
    for (const n of unused) await this.removeNetwork(n.id);
    return unused.map((n) => n.name);
  }

  createSandbox(req: SandboxCreate): Promise<SandboxRecord> {
    return this.serial(async () => {
      const sb = this.#planSandbox(req);
      try {
        if (ownNamespace(sb.mode)) await this.#dp.createNetns(sb.netns!, req.netns ?? (req.pid === undefined ? undefined : `/proc/${req.pid}/ns/net`));
        this.#state = { ...this.#state, sandboxes: [...this.#state.sandboxes, sb] };
        await this.#wire(sb);
      } catch (err) {
        await this.#teardown(sb).catch(() => {});
        this.#state = { ...this.#state, sandboxes: this.#state.sandboxes.filter((s) => s !== sb) };
        throw err;
      }
      this.#commit();
      return sb;
    });
  }

  removeSandbox(ref: string): Promise<void> {
    return this.serial(async () => {
      const sb = this.sandbox(ref);
      const sharers = this.#state.sandboxes.filter((s) => s.mode === `container:${sb.name}`).map((s) => s.name);
      if (sharers.length > 0) throw forbidden(`sandbox ${sb.name} shares its namespace with ${sharers.join(', ')}: remove them first`);
      await this.#teardown(sb);
      this.#state = { ...this.#state, sandboxes: this.#state.sandboxes.filter((s) => s !== sb) };
      this.#commit();
    });
  }

  connect(netRef: string, sbRef: string, req: Omit<AttachRequest, 'network'>): Promise<void> {
    return this.serial(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (sb.mode !== 'networks') throw badRequest(`sandbox ${sb.name} uses ${sb.mode} networking and cannot join networks`);
      if (net.name in sb.attachments) throw conflict(`sandbox ${sb.name} is already connected to network ${net.name}`);
      this.#attachRecord(sb, net, { network: net.name, ...req });
      try {
        await this.#dp.attach(net, sb, Object.keys(sb.attachments).length === 1);
      } catch (err) {
        await this.#dp.detach(net, sb).catch(() => {});
        delete sb.attachments[net.name];
        throw err;
      }
      this.#files(sb);
      this.#commit();
    });
  }

  disconnect(netRef: string, sbRef: string): Promise<void> {
    return this.serial(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (!(net.name in sb.attachments)) throw notFound(`sandbox ${sb.name} is not connected to network ${net.name}`);
      await this.#dp.detach(net, sb);
      delete sb.attachments[net.name];
      this.#files(sb);
      this.#commit();
    });
  }

  #planSandbox(req: SandboxCreate): SandboxRecord {
    if (typeof req.name !== 'string' || !NAME.test(req.name)) throw badRequest(`invalid sandbox name ${JSON.stringify(req.name)}: letters, digits, '_', '.', '-'`);
    if (this.#state.sandboxes.some((s) => s.name === req.name)) throw conflict(`sandbox name ${req.name} is already in use`);
    const id = newId();
    const wanted = req.networks ?? [{ network: 'bridge' }];
    const special = wanted.find((w) => w.network === 'host' || w.network === 'none' || w.network.startsWith('container:'));
    if (special !== undefined && wanted.length > 1) throw badRequest(`${special.network} networking cannot be combined with other networks`);
    const shared = special?.network.startsWith('container:') === true ? this.sandbox(special.network.slice('container:'.length)) : undefined;
    if (shared !== undefined && (req.netns !== undefined || req.pid !== undefined)) throw badRequest('container: networking cannot adopt a namespace too');
    for (const d of req.dns ?? []) parseUpstream(d);
    const links = (req.links ?? []).map((l) => {
      const [name = '', alias = name] = l.split(':');
      if (!this.#state.sandboxes.some((s) => s.name === name)) throw badRequest(`--link ${l}: no sandbox named ${name}`);
      return { name, alias };
    });
    const mode: SandboxRecord['mode'] = special === undefined ? 'networks' : shared !== undefined ? `container:${shared.name}` : (special.network as 'host' | 'none');
    const netns = mode === 'host' ? undefined : shared !== undefined ? shared.netns : `${this.#o.netnsPrefix ?? 'tsnet-'}${req.name}`;
    const sb: SandboxRecord = {
      id,
      name: req.name,
      created: new Date().toISOString(),
      hostname: req.hostname ?? id.slice(0, 12),
      mode,
      ...(netns === undefined ? {} : { netns }),
      ownsNetns: ownNamespace(mode) && req.netns === undefined && req.pid === undefined,
      aliases: req.aliases ?? [],
      dns: req.dns ?? [],
      dnsSearch: req.dnsSearch ?? [],
      dnsOptions: req.dnsOptions ?? [],
      links,
      attachments: {},
      fileHashes: {},
    };
    for (const w of special === undefined ? wanted : []) {
      const net = this.network(w.network);
      if (net.name in sb.attachments) throw badRequest(`network ${net.name} is given twice`);
      this.#attachRecord(sb, net, w);
    }
    return sb;
  }

  /** Allocates addresses and an interface for `sb` on `net` (records only; the kernel comes after). */
  #attachRecord(sb: SandboxRecord, net: NetworkRecord, req: AttachRequest): void {
    const inUse = new Set(this.#state.sandboxes.flatMap((s) => [s.attachments[net.name]?.ipv4, s.attachments[net.name]?.ipv6]).filter((a): a is string => a !== undefined));
    for (const a of Object.values(sb.attachments)) for (const ip of [a.ipv4, a.ipv6]) if (ip !== undefined) inUse.add(ip);
    try {
      const ipv4 = allocateAddress({ network: net.name, subnet: net.ipam!.subnet, gateway: net.ipam!.gateway, ipRange: net.ipam!.ipRange }, inUse, req.ip);
      const ipv6 =
        net.ipam?.subnet6 === undefined ? undefined : allocateAddress({ network: net.name, subnet: net.ipam.subnet6, gateway: net.ipam.gateway6 }, inUse, req.ip6);
      const used = new Set(Object.values(sb.attachments).map((a) => a.ifname));
      let n = 0;
      while (used.has(`eth${n}`)) n++;
      sb.attachments[net.name] = {
        ...(ipv4 === undefined ? {} : { ipv4 }),
        ...(ipv6 === undefined ? {} : { ipv6 }),
        aliases: req.aliases ?? [],
        ifname: `eth${n}`,
        hostIf: hostIfName(sb.id, net.name),
        endpointId: newId(),
      };
    } catch (err) {
      throw badRequest((err as Error).message);
    }
  }

  /** Wires a sandbox whose namespace exists: links, files, its resolver. Safe to repeat. */
  async #wire(sb: SandboxRecord): Promise<void> {
    if (!this.#state.sandboxes.includes(sb) || !ownNamespace(sb.mode)) return;
    if (sb.ownsNetns) await this.#dp.createNetns(sb.netns!);
    if (sb.mode === 'none') {
      await this.#dp.loopbackUp(sb.netns!);
      this.#files(sb);
      return;
    }
    const nets = Object.keys(sb.attachments).map((n) => this.network(n));
    for (const [i, net] of nets.entries()) await this.#dp.attach(net, sb, i === 0);
    this.#files(sb);
    if (!this.#listeners.has(sb.id)) {
      const upstreams: Upstream[] | undefined = sb.dns.length > 0 ? sb.dns.map(parseUpstream) : undefined;
      const listener = await this.#o.dns.listen({
        address: '127.0.0.11',
        port: 53,
        netns: netnsPath(sb.netns!),
        scope: () => dnsScope(this.#state, sb),
        ...(upstreams === undefined ? {} : { upstreams, upstreamNetns: netnsPath(sb.netns!) }),
      });
      this.#listeners.set(sb.id, listener);
    }
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
    await step(() => this.#listeners.get(sb.id)?.close());
    this.#listeners.delete(sb.id);
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

  #firewall(networks: readonly NetworkRecord[]): Promise<void> {
    return this.#dp.applyFirewall(this.#o.nftTable ?? 'tsnet', networks);
  }

  #files(sb: SandboxRecord): void {
    sb.fileHashes = writeSandboxFiles(filesDir(sb.netns!), sandboxFiles(this.#state, sb, this.#o.hostSearch), sb.fileHashes);
  }

  /** Persists, then publishes to the registry: a change is on disk before anyone sees it. */
  #commit(): void {
    this.#o.store.save(this.#state);
    this.#o.registry.replace(toRecords(this.#state));
  }
}
