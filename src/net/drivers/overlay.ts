import { existsSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { namedNetns, inNetns, type OwnedNamespaces } from '../../netns/netns.js';
import { ipBatch, ipJson, linkExists } from '../link/ip.js';
import { configureInside, vethOnBridge, withMacOfIp } from './bridge.js';
import type { NetworkDriver, NetworkInfo } from './driver.js';

/** The UDP port of VXLAN (IANA), as Docker uses it. */
export const VXLAN_PORT = 4789;

/** VXLAN's encapsulation: inner Ethernet 14, outer IPv4 20, UDP 8, VXLAN 8. */
export const VXLAN_OVERHEAD = 50;

/**
 * WireGuard's over an IPv4 underlay: IP 20, UDP 8, its header 16, the tag 16. A 1500-byte
 * underlay gives WireGuard 1440 and the sandboxes 1390 (multihost.md §4: `ping -M do -s 1362`
 * passes, 1363 does not). Over IPv6 it is 80: give such a network 20 bytes less by the mtu option.
 */
export const WIREGUARD_OVERHEAD = 60;

/**
 * An overlay network's namespace on this node: under the daemon's prefix, with a `+` no sandbox
 * name has (theirs are the prefix and the name), so the two never meet.
 */
export const overlayNetns = (netnsPrefix: string, networkId: string): string => `${netnsPrefix}ov+${networkId.slice(0, 12)}`;

interface Link {
  ifname: string;
  master?: string;
}

/** Brings this node's WireGuard tunnel up (when it is not) and resolves with its tunnel address. */
export type TunnelUp = () => Promise<string>;

/** The `local` address a VXLAN device was made with, if any. */
async function vxlanLocal(ns: string): Promise<string | undefined> {
  const [link] = await ipJson<{ linkinfo?: { info_data?: { local?: string } } }[]>(['-d', 'link', 'show', 'dev', 'vxlan0'], ns);
  return link?.linkinfo?.info_data?.local;
}

const inside = (net: NetworkInfo): string => {
  if (net.netns === undefined || net.device === undefined || net.vni === undefined) throw new Error(`overlay ${net.name}: no namespace, VXLAN device or VNI`);
  return net.netns;
};

/**
 * Overlay networks (seed 004, moby's overlay driver): on each node that has a sandbox on the
 * network, a namespace of the network's own holding `br0` (the gateway) and `vxlan0`, and one
 * veth per sandbox with its host end on `br0`. `vxlan0` is made in the host's namespace and then
 * moved, so its UDP socket (4789) stays on the underlay. Learning is off and nothing floods: the
 * peers' FDB and neighbour entries are programmed from the store (src/reconcile/overlay-peers.ts).
 * The namespace is made on the first attach and removed with the last detach, as Docker does.
 *
 * An encrypted network's `vxlan0` is made with `local <this node's tunnel address>`, and its
 * peers' FDB entries point at theirs: its VXLAN is routed into WireGuard, never onto the
 * underlay (multihost.md §4). Plain networks share the host's 4789 socket with it.
 */
export const overlayDriver = (namespaces: OwnedNamespaces, tunnel?: TunnelUp): NetworkDriver => {
  /** The sandboxes' veth ends on br0, from one listing of the namespace's links. */
  const portsOf = (links: readonly Link[]): string[] => links.filter((l) => l.master === 'br0' && l.ifname !== 'vxlan0').map((l) => l.ifname);
  const ports = async (ns: string): Promise<string[]> => portsOf(await ipJson<Link[]>(['link', 'show'], ns));

  /**
   * The network's namespace with br0 and vxlan0, made or completed (a crash may have left it half
   * made), and the veth ports on br0 as they were (making br0 and vxlan0 adds none).
   */
  async function ensure(net: NetworkInfo): Promise<{ ns: string; ports: string[] }> {
    const ns = inside(net);
    if (net.encrypted === true && tunnel === undefined) throw new Error(`overlay ${net.name}: encrypted, and this daemon has no WireGuard tunnel to carry it`);
    if (!existsSync(namedNetns(ns))) await namespaces.create(ns);
    // After the namespace: the tunnel is kept up while an encrypted network's namespace exists.
    const local = net.encrypted === true ? await tunnel!() : undefined;
    if (local !== undefined && !isIPv4(local)) throw new Error(`overlay ${net.name}: tunnel address ${JSON.stringify(local)} is not an IPv4 address`);
    const listed = await ipJson<Link[]>(['link', 'show'], ns);
    const links = new Set(listed.map((l) => l.ifname));
    // One made for another tunnel address (the node's claim was freed and claimed anew) is made again.
    if (local !== undefined && links.has('vxlan0') && (await vxlanLocal(ns)) !== local) {
      await ipBatch([['link', 'del', 'dev', 'vxlan0']], ns);
      links.delete('vxlan0');
    }
    if (!links.has('br0')) {
      await ipBatch([['link', 'add', 'name', 'br0', 'mtu', String(net.mtu), 'type', 'bridge']], ns);
      // Bridged frames in here need no netfilter hooks: nothing filters in this namespace.
      inNetns(namedNetns(ns), () => {
        if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', '0');
      });
    }
    if (!links.has('vxlan0')) {
      // One made before a crash and never moved blocks its VNI on the host's 4789 socket.
      if (linkExists(net.device!)) await ipBatch([['link', 'del', 'dev', net.device!]]);
      await ipBatch([
        ['link', 'add', 'name', net.device!, 'mtu', String(net.mtu), 'type', 'vxlan', 'id', String(net.vni), 'dstport', String(VXLAN_PORT), ...(local === undefined ? [] : ['local', local]), 'nolearning', 'proxy'],
        ['link', 'set', 'dev', net.device!, 'alias', net.owner],
        ['link', 'set', 'dev', net.device!, 'netns', ns],
      ]);
      await ipBatch([['link', 'set', 'dev', net.device!, 'name', 'vxlan0']], ns);
    }
    const cmds: string[][] = [['link', 'set', 'dev', 'lo', 'up']];
    if (net.gateway !== undefined) cmds.push(['addr', 'replace', `${net.gateway.address}/${net.gateway.prefix}`, 'dev', 'br0']);
    cmds.push(['link', 'set', 'dev', 'vxlan0', 'master', 'br0', 'up'], ['link', 'set', 'dev', 'br0', 'up']);
    await ipBatch(cmds, ns);
    return { ns, ports: portsOf(listed) };
  }

  return {
    name: 'overlay',

    // Made on the first attach: a node without a sandbox on the network has nothing of it.
    async createNetwork() {},

    async deleteNetwork(net) {
      const ns = inside(net);
      if (existsSync(namedNetns(ns)) && (await namespaces.isOurs(ns))) await namespaces.remove(ns);
    },

    async attach(net, info) {
      const { ns, ports: present } = await ensure(net);
      if (!present.includes(info.hostIf)) {
        await ipBatch(vethOnBridge(info, 'br0'), ns);
      }
      await configureInside(withMacOfIp(info));
    },

    async detach(net, info) {
      const ns = inside(net);
      if (!existsSync(namedNetns(ns))) return;
      const left = await ports(ns);
      if (left.includes(info.hostIf)) await ipBatch([['link', 'del', 'dev', info.hostIf]], ns);
      if (left.every((p) => p === info.hostIf)) await namespaces.remove(ns);
    },
  };
};
