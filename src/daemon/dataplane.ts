import { systemTool } from '../net/tools.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { bridgeDriver } from '../net/drivers/bridge.js';
import { ipBatch } from '../net/link/ip.js';
import type { AttachInfo, NetworkInfo } from '../net/drivers/driver.js';
import { nftApply } from '../net/nft/apply.js';
import { renderDelete, renderRuleset } from '../net/nft/ruleset.js';
import type { NetworkRecord, SandboxRecord } from './state.js';

const run = promisify(execFile);
export const netnsPath = (name: string): string => `/run/netns/${name}`;
export const filesDir = (netns: string): string => `/etc/netns/${netns}`;

const prefixOf = (cidr: string): number => Number(cidr.split('/')[1]);

export function networkInfo(net: NetworkRecord): NetworkInfo {
  const info: NetworkInfo = { name: net.name, mtu: net.mtu };
  if (net.device !== undefined) info.device = net.device;
  if (net.ipam !== null) {
    info.gateway = { address: net.ipam.gateway, prefix: prefixOf(net.ipam.subnet) };
    if (net.ipam.subnet6 !== undefined && net.ipam.gateway6 !== undefined) {
      info.gateway6 = { address: net.ipam.gateway6, prefix: prefixOf(net.ipam.subnet6) };
    }
  }
  return info;
}

/** The host end of a sandbox's veth on a network: short (IFNAMSIZ), stable, unique. */
export const hostIfName = (sandboxId: string, network: string): string =>
  `tsv${createHash('sha256').update(`${sandboxId}/${network}`).digest('hex').slice(0, 10)}`;

export function attachInfo(net: NetworkRecord, sb: SandboxRecord, defaultRoute: boolean): AttachInfo {
  const att = sb.attachments[net.name]!;
  const info: AttachInfo = { netns: sb.netns!, ifname: att.ifname, hostIf: att.hostIf, defaultRoute, mtu: net.mtu };
  if (att.ipv4 !== undefined && net.ipam !== null) info.ipv4 = { address: att.ipv4, prefix: prefixOf(net.ipam.subnet) };
  if (att.ipv6 !== undefined && net.ipam?.subnet6 !== undefined) info.ipv6 = { address: att.ipv6, prefix: prefixOf(net.ipam.subnet6) };
  if (net.ipam !== null) info.gateway = net.ipam.gateway;
  return info;
}

/** Kernel side of networks and sandboxes: namespaces, bridges, veths and the nft table. */
export const dataplane = {
  createNetwork: (net: NetworkRecord) => (net.driver === 'bridge' ? bridgeDriver.createNetwork(networkInfo(net)) : Promise.resolve()),
  deleteNetwork: (net: NetworkRecord) => (net.driver === 'bridge' ? bridgeDriver.deleteNetwork(networkInfo(net)) : Promise.resolve()),
  attach: (net: NetworkRecord, sb: SandboxRecord, defaultRoute: boolean) => bridgeDriver.attach(networkInfo(net), attachInfo(net, sb, defaultRoute)),
  detach: (net: NetworkRecord, sb: SandboxRecord) => bridgeDriver.detach(networkInfo(net), attachInfo(net, sb, false)),

  /** The whole firewall for these networks in one transaction; the table goes when none is left. */
  async applyFirewall(table: string, networks: readonly NetworkRecord[]): Promise<void> {
    const bridges = networks.filter((n) => n.driver === 'bridge' && n.ipam !== null && n.device !== undefined);
    if (bridges.length === 0) {
      const { stdout } = await run(systemTool('nft'), ['list', 'tables']);
      if (stdout.includes(`table inet ${table}\n`)) await nftApply(renderDelete(table));
      return;
    }
    await nftApply(renderRuleset(table, bridges.map((n) => ({ network: n.name, bridge: n.device!, subnet: n.ipam!.subnet, internal: n.internal }))));
    if (bridges.some((n) => !n.internal)) writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  },

  /** A namespace of tsnet's own (`ip netns add`), or a runtime's adopted by bind-mounting it under /run/netns. */
  async createNetns(name: string, adopt?: string): Promise<void> {
    if (existsSync(netnsPath(name))) return;
    if (adopt === undefined) {
      await run(systemTool('ip'), ['netns', 'add', name]);
      return;
    }
    if (!existsSync(adopt)) throw new Error(`namespace ${adopt} does not exist`);
    mkdirSync('/run/netns', { recursive: true });
    writeFileSync(netnsPath(name), '');
    await run(systemTool('mount'), ['--bind', adopt, netnsPath(name)]);
  },

  loopbackUp: (netns: string) => ipBatch([['link', 'set', 'dev', 'lo', 'up']], netns),

  async deleteNetns(name: string, owned: boolean): Promise<void> {
    if (!existsSync(netnsPath(name))) return;
    if (owned) await run(systemTool('ip'), ['netns', 'del', name]);
    else {
      await run(systemTool('umount'), [netnsPath(name)]).catch(() => {});
      rmSync(netnsPath(name), { force: true });
    }
  },
};
