import { existsSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import type { NodeList } from '../cluster/node-list.js';
import { isEncrypted } from '../cluster/objects.js';
import { macOf } from '../net/drivers/bridge.js';
import { overlayNetns } from '../net/drivers/overlay.js';
import { kernelPeers, programPeers, type Peer } from '../net/drivers/overlay-peers.js';
import { namedNetns } from '../netns/netns.js';
import type { ClusterView } from './cluster-view.js';

export interface OverlayPeersOptions {
  /** This node: its own endpoints are on its own bridge, not peers. */
  node: string;
  netnsPrefix: string;
  logger: Logger;
}

const same = (a: Peer, b: Peer): boolean => a.mac === b.mac && a.vtep === b.vtep;

/**
 * Keeps every overlay namespace of this node programmed with the sandboxes of the other ready
 * nodes on that network (their FDB and neighbour entries), from the cluster view and the node
 * list: an endpoint written anywhere, a node gone down or moved to another address, all end in
 * one pass that compares what should be with what was programmed and changes only the
 * difference. What a namespace holds is read from the kernel the first time (after a restart),
 * and again after a pass on it failed.
 */
export class OverlayPeers {
  readonly #programmed = new Map<string, Map<string, Peer>>();
  #dirty = false;
  #pass: Promise<void> | undefined;

  constructor(
    readonly view: ClusterView,
    readonly nodes: NodeList,
    readonly options: OverlayPeersOptions,
  ) {
    view.onChange(() => this.schedule());
    nodes.onChange(() => this.schedule());
  }

  /** Queues a pass (one runs at a time; changes meanwhile make one more). */
  schedule(): void {
    this.#dirty = true;
    this.#pass ??= this.#run();
  }

  /** Runs one more pass and resolves once none is queued or running: the kernel has what the view holds now. */
  async converge(): Promise<void> {
    this.schedule();
    while (this.#pass !== undefined) await this.#pass;
  }

  async #run(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        await this.#syncAll();
      }
    } finally {
      this.#pass = undefined;
    }
  }

  async #syncAll(): Promise<void> {
    const overlays = this.view.networks().filter((n) => n.driver === 'overlay');
    for (const id of this.#programmed.keys()) if (!overlays.some((n) => n.id === id)) this.#programmed.delete(id);
    for (const net of overlays) {
      const ns = overlayNetns(this.options.netnsPrefix, net.id);
      if (!existsSync(namedNetns(ns))) {
        this.#programmed.delete(net.id);
        continue;
      }
      try {
        await this.#sync(net.id, ns, isEncrypted(net));
      } catch (err) {
        this.#programmed.delete(net.id);
        // Being built right now (the namespace comes before its devices): the attach's own commit converges it.
        if (/Cannot find device "vxlan0"/.test((err as Error).message)) continue;
        this.options.logger.error({ network: net.name, err: (err as Error).message }, 'overlay peers could not be programmed; the next change tries again');
      }
    }
  }

  /**
   * An encrypted network's VTEP is the peer's tunnel address, so its VXLAN is routed into
   * WireGuard; a peer with no tunnel up gets no entry (never one towards its underlay address).
   */
  async #sync(id: string, ns: string, encrypted: boolean): Promise<void> {
    const want = new Map<string, Peer>();
    for (const ep of this.view.endpointsOn(id)) {
      if (ep.node === this.options.node || ep.ipv4 === undefined) continue;
      const node = this.nodes.get(ep.node);
      if (node?.state !== 'ready') continue;
      const vtep = encrypted ? node.node.wireguard?.address : node.node.address;
      if (vtep === undefined || isIP(vtep) === 0 || !isIPv4(ep.ipv4)) continue;
      want.set(ep.ipv4, { ip: ep.ipv4, mac: macOf(ep.ipv4), vtep });
    }
    const have = this.#programmed.get(id) ?? (await kernelPeers(ns));
    const put = [...want.values()].filter((p) => !have.has(p.ip) || !same(have.get(p.ip)!, p));
    const drop = [...have.values()].filter((p) => !want.has(p.ip));
    await programPeers(ns, put, drop);
    this.#programmed.set(id, want);
  }
}
