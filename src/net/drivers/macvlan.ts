import { ipBatch, ipJson, linkExists } from '../link/ip.js';
import { configureInside } from './bridge.js';
import type { NetworkDriver, NetworkInfo } from './driver.js';

/** `eth0.42` → the base interface and VLAN id; undefined for a plain interface. */
export function vlanOf(parent: string): { base: string; id: number } | undefined {
  const m = /^(.+)\.(\d{1,4})$/.exec(parent);
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 4094) return undefined;
  return { base: m[1]!, id: Number(m[2]) };
}

const aliasOf = async (dev: string): Promise<string | undefined> => (await ipJson<{ ifalias?: string }[]>(['link', 'show', 'dev', dev]))[0]?.ifalias;

/**
 * macvlan networks (seed 004): each sandbox gets a macvlan interface of its own on the parent,
 * in bridge mode, so sandboxes and the parent's segment see each other directly; no bridge, no
 * NAT. With `parent=IFACE.VLAN` the 802.1q sub-interface is made if missing (marked with the
 * owner alias) and removed with the network. The host cannot reach its own macvlan children
 * through the parent (a kernel rule); `shim` gives it a macvlan of its own as the workaround.
 */
export const macvlanDriver: NetworkDriver = {
  name: 'macvlan',

  async createNetwork(net) {
    const parent = net.parent!;
    if (!linkExists(parent)) {
      const vlan = vlanOf(parent);
      if (vlan === undefined || !linkExists(vlan.base)) throw new Error(`macvlan: parent interface ${parent} does not exist`);
      await ipBatch([
        ['link', 'add', 'link', vlan.base, 'name', parent, 'type', 'vlan', 'id', String(vlan.id)],
        ['link', 'set', 'dev', parent, 'alias', net.owner],
        ['link', 'set', 'dev', parent, 'up'],
      ]);
    }
    if (net.shim !== undefined && net.device !== undefined && !linkExists(net.device)) {
      await ipBatch([
        ['link', 'add', 'link', parent, 'name', net.device, 'type', 'macvlan', 'mode', 'bridge'],
        ['link', 'set', 'dev', net.device, 'alias', net.owner],
        ['addr', 'add', `${net.shim}/32`, 'dev', net.device],
        ['link', 'set', 'dev', net.device, 'up'],
        ['route', 'replace', net.subnet!, 'dev', net.device],
      ]);
    }
  },

  async deleteNetwork(net) {
    if (net.device !== undefined && linkExists(net.device)) await ipBatch([['link', 'del', 'dev', net.device]]);
    if (linkExists(net.parent!) && (await aliasOf(net.parent!)) === net.owner) await ipBatch([['link', 'del', 'dev', net.parent!]]);
  },

  async attach(net, info) {
    const present = (await ipJson<{ ifname: string }[]>(['link', 'show'], info.netns)).some((l) => l.ifname === info.ifname);
    if (!present) {
      await ipBatch([['link', 'add', 'link', net.parent!, 'name', info.hostIf, 'mtu', String(info.mtu), 'netns', info.netns, 'type', 'macvlan', 'mode', 'bridge']]);
      await ipBatch([['link', 'set', 'dev', info.hostIf, 'name', info.ifname]], info.netns);
    }
    await configureInside(info);
  },

  async detach(_net: NetworkInfo, info) {
    const present = (await ipJson<{ ifname: string }[]>(['link', 'show'], info.netns).catch(() => [])).some((l) => l.ifname === info.ifname);
    if (present) await ipBatch([['link', 'del', 'dev', info.ifname]], info.netns);
  },
};
