import { ipBatch, ipJson, linkExists } from '../link/ip.js';
import type { AttachInfo, NetworkDriver } from './driver.js';

const cidr = (a: { address: string; prefix: number }): string => `${a.address}/${a.prefix}`;

/** Linux bridge networks: one bridge per network with the gateway on it, a veth pair per sandbox. */
export const bridgeDriver: NetworkDriver = {
  name: 'bridge',

  async createNetwork(net) {
    const dev = net.device!;
    const cmds: string[][] = [];
    if (!(await linkExists(dev))) cmds.push(['link', 'add', 'name', dev, 'mtu', String(net.mtu), 'type', 'bridge']);
    if (net.gateway !== undefined) cmds.push(['addr', 'replace', cidr(net.gateway), 'dev', dev]);
    if (net.gateway6 !== undefined) cmds.push(['addr', 'replace', cidr(net.gateway6), 'dev', dev, 'nodad']);
    cmds.push(['link', 'set', 'dev', dev, 'alias', net.owner], ['link', 'set', 'dev', dev, 'up']);
    await ipBatch(cmds);
  },

  async deleteNetwork(net) {
    // Only a bridge this daemon made (its alias): a state that names a foreign interface never deletes it.
    const [link] = (await linkExists(net.device!)) ? await ipJson<{ ifalias?: string }[]>(['link', 'show', 'dev', net.device!]) : [];
    if (link?.ifalias === net.owner) await ipBatch([['link', 'del', 'dev', net.device!]]);
  },

  async attach(net, info) {
    if (!(await linkExists(info.hostIf))) {
      await ipBatch([
        ['link', 'add', 'name', info.hostIf, 'mtu', String(info.mtu), 'type', 'veth', 'peer', 'name', info.ifname, 'netns', info.netns],
        ['link', 'set', 'dev', info.hostIf, 'master', net.device!],
        ['link', 'set', 'dev', info.hostIf, 'alias', info.owner],
        ['link', 'set', 'dev', info.hostIf, 'up'],
      ]);
    }
    await configureInside(info);
  },

  async detach(_net, info) {
    if (await linkExists(info.hostIf)) await ipBatch([['link', 'del', 'dev', info.hostIf]]);
  },
};

/** Addresses, link state and default route inside the sandbox: `replace` makes it safe to repeat. */
export async function configureInside(info: AttachInfo): Promise<void> {
  const cmds: string[][] = [['link', 'set', 'dev', 'lo', 'up']];
  if (info.mac !== undefined) cmds.push(['link', 'set', 'dev', info.ifname, 'address', info.mac]);
  if (info.ipv4 !== undefined) cmds.push(['addr', 'replace', cidr(info.ipv4), 'dev', info.ifname]);
  if (info.ipv6 !== undefined) cmds.push(['addr', 'replace', cidr(info.ipv6), 'dev', info.ifname, 'nodad']);
  cmds.push(['link', 'set', 'dev', info.ifname, 'up']);
  if (info.defaultRoute && info.gateway !== undefined) cmds.push(['route', 'replace', 'default', 'via', info.gateway, 'dev', info.ifname]);
  await ipBatch(cmds, info.netns);
}

/** Interface names inside a sandbox, to pick the next free ethN. */
export async function sandboxInterfaces(netns: string): Promise<string[]> {
  const links = await ipJson<{ ifname: string }[]>(['link', 'show'], netns);
  return links.map((l) => l.ifname);
}
