import { existsSync, statSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { NodeList } from '../cluster/node-list.js';
import type { Membership } from '../cluster/nodes.js';
import { isEncrypted, type NetworkObject, type WireguardObject } from '../cluster/objects.js';
import { claimTunnelAddress, poolBits, TUNNEL_POOL } from '../cluster/tunnel-claims.js';
import { overlayNetns, VXLAN_OVERHEAD, VXLAN_PORT, WIREGUARD_OVERHEAD } from '../net/drivers/overlay.js';
import { ipBatch } from '../net/link/ip.js';
import { Cidr } from '../net/ipam/cidr.js';
import { WgDevice, type WgKind } from '../net/wireguard/device.js';
import { applyGuard, guardDrops } from '../net/wireguard/guard.js';
import { generatePrivateKey, isWgKey, loadOrCreateKey, publicKeyOf, writeKeyFile } from '../net/wireguard/keys.js';
import { checkEndpoint, wgSetKey, wgSetPeers, wgShow, type WgPeer, type WgState } from '../net/wireguard/wg.js';
import { namedNetns } from '../netns/paths.js';
import type { Store } from '../store/store.js';
import type { ClusterView } from './cluster-view.js';

export interface TunnelsOptions {
  /** This node's name and the address other nodes reach it at (its WireGuard endpoint's). */
  node: string;
  address: string;
  /** The WireGuard interface: unique on the machine (wireguard-go's UAPI sockets share one directory). */
  ifname: string;
  listenPort: number;
  /** The private key's file (0600), in the state directory. */
  keyFile: string;
  /** Marks the interface as this daemon's (its alias). */
  owner: string;
  netnsPrefix: string;
  /** The guard's nft table (inet). */
  guardTable: string;
  /** Milliseconds between automatic key rotations (0: never). */
  rotateEveryMs: number;
  logger: Logger;
}

/** What `network inspect` shows of the tunnel. */
export interface TunnelStatus {
  ifname: string;
  /** `down` while this node has no sandbox on an encrypted overlay. */
  kind: WgKind | 'down';
  address?: string;
  publicKey?: string;
  listenPort: number;
  keyRotatedAt?: string;
  /** The guard's table and the cleartext VXLAN packets of encrypted VNIs it dropped coming in and going out. */
  guard: { table: string; in: number; out: number };
  /** Peers by node name, as `wg` reports them. */
  peers: (WgState['peers'][number] & { node: string })[];
}

/** A node record's tunnel, when every field is fit to reach `wg` (a bad one is skipped, never passed on). */
function peerOf(wg: WireguardObject | undefined, pool: Cidr): WgPeer | undefined {
  if (wg === undefined || !isWgKey(wg.publicKey) || !pool.contains(wg.address)) return undefined;
  try {
    checkEndpoint(wg.endpoint);
  } catch {
    return undefined;
  }
  return { publicKey: wg.publicKey, endpoint: wg.endpoint, allowedIp: wg.address };
}

/**
 * This node's WireGuard tunnel for encrypted overlays (multihost.md §4): up while one of its
 * sandboxes is on an encrypted overlay (while such a network's namespace exists here), down
 * otherwise and when the daemon stops. Up means: a tunnel address claimed in the store, the
 * private key from the state directory, the device (kernel, else wireguard-go) with that
 * address, and the public key and endpoint in the node record; its peers are the other ready
 * nodes whose records carry a tunnel, each allowed its own tunnel address only (so no node can
 * send as another). The guard's table follows the encrypted networks of the whole cluster.
 * Everything runs one step at a time; a pass compares and changes only what differs.
 */
export class Tunnels {
  readonly #o: TunnelsOptions;
  readonly #device: WgDevice;
  readonly #pool = Cidr.parse(TUNNEL_POOL);
  #address: string | undefined;
  /** The public key of the private key set on the device, and its MTU, as last set. */
  #deviceKey: string | undefined;
  #deviceMtu: number | undefined;
  #guard: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #dirty = false;
  #pass: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    readonly view: ClusterView,
    readonly nodes: NodeList,
    readonly membership: Membership,
    readonly store: Store,
    options: TunnelsOptions,
  ) {
    this.#o = options;
    this.#device = new WgDevice(options.ifname, options.owner, () => this.schedule());
    view.onChange(() => this.schedule());
    nodes.onChange(() => this.schedule());
  }

  /** For the overlay driver: the tunnel up (made now if it is not), resolving with this node's tunnel address. */
  readonly up = (): Promise<string> =>
    this.#serial(async () => {
      await this.#bringUp();
      await this.#syncPeers();
      return this.#address!;
    });

  /** Queues a pass (one runs at a time; changes meanwhile make one more). */
  schedule(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#pass ??= this.#run();
  }

  /** One more pass, resolved once none is queued or running. */
  async converge(): Promise<void> {
    this.schedule();
    while (this.#pass !== undefined) await this.#pass;
  }

  /**
   * A new private key: written to its file, set on the device, then published, and each peer
   * replaces the old key with it. Sessions are keyed anew at the next packet (a handshake, one
   * round trip), so TCP over the tunnel sees a pause, not a loss.
   */
  rotate(): Promise<{ publicKey: string }> {
    return this.#serial(async () => {
      writeKeyFile(this.#o.keyFile, generatePrivateKey());
      const publicKey = publicKeyOf(loadOrCreateKey(this.#o.keyFile));
      if (this.#device.kind !== undefined) {
        await wgSetKey(this.#o.ifname, this.#o.keyFile);
        this.#deviceKey = publicKey;
        await this.#publish(publicKey);
      }
      this.#o.logger.info({ publicKey }, 'WireGuard key rotated');
      this.#arm();
      return { publicKey };
    });
  }

  async status(): Promise<TunnelStatus> {
    const guard = { table: this.#o.guardTable, ...(await guardDrops(this.#o.guardTable)) };
    const base = { ifname: this.#o.ifname, listenPort: this.#o.listenPort, guard, ...(existsSync(this.#o.keyFile) ? { keyRotatedAt: statSync(this.#o.keyFile).mtime.toISOString() } : {}) };
    const kind = this.#device.kind;
    if (kind === undefined) return { ...base, kind: 'down', peers: [] };
    const state = await wgShow(this.#o.ifname).catch(() => undefined);
    const byKey = new Map(this.nodes.all().flatMap((n) => (n.node.wireguard === undefined ? [] : [[n.node.wireguard.publicKey, n.name] as const])));
    return {
      ...base,
      kind,
      ...(this.#address === undefined ? {} : { address: this.#address }),
      ...(state === undefined ? {} : { publicKey: state.publicKey }),
      peers: (state?.peers ?? []).map((p) => ({ ...p, node: byKey.get(p.publicKey) ?? '' })),
    };
  }

  /** The daemon stops: the record loses its tunnel (if the store answers soon) and the device goes. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    return this.#serial(async () => {
      if (this.membership.node.wireguard !== undefined) {
        await Promise.race([this.membership.updateRecord({ wireguard: undefined }).catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
      }
      await this.#device.remove();
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #run(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        await this.#serial(() => this.#reconcile()).catch((err: Error) => this.#o.logger.error({ err: err.message }, 'WireGuard tunnel pass failed; the next change tries again'));
      }
    } finally {
      this.#pass = undefined;
    }
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const encrypted = this.view.networks().filter(isEncrypted);
    await this.#applyGuard(encrypted);
    const wanted = encrypted.some((n) => existsSync(namedNetns(overlayNetns(this.#o.netnsPrefix, n.id))));
    if (!wanted) return this.#takeDown();
    await this.#bringUp(encrypted);
    await this.#syncPeers();
  }

  async #applyGuard(encrypted: readonly NetworkObject[]): Promise<void> {
    const vnis = encrypted.flatMap((n) => (n.vni === undefined ? [] : [n.vni])).sort((a, b) => a - b);
    const key = vnis.join(',');
    if (this.#guard === key) return;
    await applyGuard({ table: this.#o.guardTable, wgIfname: this.#o.ifname, vxlanPort: VXLAN_PORT, vnis });
    this.#guard = key;
  }

  /** Claims the address, makes (or finds) the device, keys and addresses it, and publishes it. */
  async #bringUp(encrypted: readonly NetworkObject[] = this.view.networks().filter(isEncrypted)): Promise<void> {
    if (this.#stopped) throw new Error('reconcile/tunnels: the daemon is stopping');
    this.#address ??= await claimTunnelAddress(this.store, this.#o.node);
    const publicKey = publicKeyOf(loadOrCreateKey(this.#o.keyFile));
    const fresh = this.#device.kind === undefined;
    const kind = fresh ? await this.#device.create() : this.#device.kind!;
    // Each pass sets only what differs: a device already keyed and addressed is left alone.
    if (fresh || this.#deviceKey !== publicKey) {
      await wgSetKey(this.#o.ifname, this.#o.keyFile, fresh ? this.#o.listenPort : undefined);
      this.#deviceKey = publicKey;
    }
    // Large enough for the largest encrypted network's VXLAN packets (1440 for a 1500 underlay).
    const mtu = Math.max(1500 - WIREGUARD_OVERHEAD, ...encrypted.map((n) => n.mtu + VXLAN_OVERHEAD));
    if (fresh || this.#deviceMtu !== mtu) {
      await ipBatch([
        ['addr', 'replace', `${this.#address}/${poolBits()}`, 'dev', this.#o.ifname],
        ['link', 'set', 'dev', this.#o.ifname, 'mtu', String(mtu), 'up'],
      ]);
      this.#deviceMtu = mtu;
    }
    await this.#publish(publicKey);
    if (!fresh) return;
    this.#o.logger.info({ ifname: this.#o.ifname, kind, address: this.#address }, 'WireGuard tunnel up');
    this.#arm();
  }

  async #takeDown(): Promise<void> {
    if (this.membership.node.wireguard !== undefined) await this.membership.updateRecord({ wireguard: undefined });
    if (this.#device.kind === undefined) return;
    await this.#device.remove();
    this.#o.logger.info({ ifname: this.#o.ifname }, 'WireGuard tunnel down: no encrypted overlay left on this node');
  }

  async #publish(publicKey: string): Promise<void> {
    const a = this.#o.address;
    const wireguard: WireguardObject = { publicKey, endpoint: `${isIPv6(a) ? `[${a}]` : a}:${this.#o.listenPort}`, address: this.#address! };
    const was = this.membership.node.wireguard;
    if (was?.publicKey === wireguard.publicKey && was.endpoint === wireguard.endpoint && was.address === wireguard.address) return;
    await this.membership.updateRecord({ wireguard });
  }

  /** Every other ready node with a tunnel is a peer, allowed its own tunnel address; the rest are removed. */
  async #syncPeers(): Promise<void> {
    const want = new Map<string, WgPeer>();
    const addresses = new Set<string>();
    for (const n of this.nodes.all()) {
      if (n.name === this.#o.node || n.state !== 'ready') continue;
      const peer = peerOf(n.node.wireguard, this.#pool);
      if (peer === undefined) {
        if (n.node.wireguard !== undefined) this.#o.logger.warn({ node: n.name }, 'a node record carries a malformed WireGuard tunnel; not taken as a peer');
        continue;
      }
      // Two records claiming one key or address: the first (by name) keeps it.
      if (want.has(peer.publicKey) || addresses.has(peer.allowedIp) || peer.allowedIp === this.#address) continue;
      want.set(peer.publicKey, peer);
      addresses.add(peer.allowedIp);
    }
    const have = new Map((await wgShow(this.#o.ifname)).peers.map((p) => [p.publicKey, p]));
    const put = [...want.values()].filter((p) => {
      const h = have.get(p.publicKey);
      return h === undefined || h.endpoint !== p.endpoint || h.allowedIp !== p.allowedIp;
    });
    const drop = [...have.keys()].filter((k) => !want.has(k));
    await wgSetPeers(this.#o.ifname, put, drop);
  }

  /**
   * The next automatic rotation: `rotateEveryMs` after the key file was last written (a restart
   * does not reset it). Armed once there is a key, with the tunnel's first coming up.
   */
  #arm(): void {
    clearTimeout(this.#timer);
    if (this.#o.rotateEveryMs <= 0 || this.#stopped || !existsSync(this.#o.keyFile)) return;
    const written = statSync(this.#o.keyFile).mtimeMs;
    const delay = Math.min(Math.max(0, written + this.#o.rotateEveryMs - Date.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      const age = existsSync(this.#o.keyFile) ? Date.now() - statSync(this.#o.keyFile).mtimeMs : Infinity;
      if (age + 50 < this.#o.rotateEveryMs) return this.#arm();
      this.rotate().catch((err: Error) => {
        // Not #arm at once: a key file that could not be written is still overdue, and would be retried in a loop.
        this.#o.logger.error({ err: err.message }, 'WireGuard key rotation failed; tried again within a minute');
        this.#timer = setTimeout(() => this.#arm(), Math.min(this.#o.rotateEveryMs, 60_000));
        this.#timer.unref();
      });
    }, delay);
    this.#timer.unref();
  }
}
