import { systemTool } from '../net/tools.js';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bridgeDriver } from '../net/drivers/bridge.js';
import { isEncrypted } from '../cluster/objects.js';
import { toolOutput } from '../net/exec/tool-runner.js';
import { ipBatch, ipJson } from '../net/link/ip.js';
import type { AttachInfo, NetworkDriver, NetworkInfo } from '../net/drivers/driver.js';
import { macvlanDriver } from '../net/drivers/macvlan.js';
import { overlayDriver, overlayNetns, type TunnelUp } from '../net/drivers/overlay.js';
import { nftApply } from '../net/nft/apply.js';
import { renderDelete, renderRuleset, type PublishRule } from '../net/nft/ruleset.js';
import { OwnedNamespaces } from '../netns/netns.js';
import { namedNetns } from '../netns/paths.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';

/** Where a named namespace is mounted (the one definition is netns/paths.ts). */
export const netnsPath = namedNetns;
export const filesDir = (netns: string): string => `/etc/netns/${netns}`;

const prefixOf = (cidr: string): number => Number(cidr.split('/')[1]);

export function networkInfo(net: NetworkRecord, owner: string, netnsPrefix: string): NetworkInfo {
  const info: NetworkInfo = { name: net.name, mtu: net.mtu, owner };
  if (net.device !== undefined) info.device = net.device;
  if (net.driver === 'overlay') info.netns = overlayNetns(netnsPrefix, net.id);
  if (net.vni !== undefined) info.vni = net.vni;
  if (isEncrypted(net)) info.encrypted = true;
  if (net.options.parent !== undefined) info.parent = net.options.parent;
  if (net.options.shim !== undefined) info.shim = net.options.shim;
  if (net.ipam !== null) info.subnet = net.ipam.subnet;
  if (net.ipam !== null) {
    info.gateway = { address: net.ipam.gateway, prefix: prefixOf(net.ipam.subnet) };
    if (net.ipam.subnet6 !== undefined && net.ipam.gateway6 !== undefined) {
      info.gateway6 = { address: net.ipam.gateway6, prefix: prefixOf(net.ipam.subnet6) };
    }
  }
  return info;
}

/** `--opt icc=false` (or Docker's com.docker.network.bridge.enable_icc=false). */
export const iccOff = (net: NetworkRecord): boolean =>
  net.options.icc === 'false' || net.options['com.docker.network.bridge.enable_icc'] === 'false';

/** The host end of a sandbox's veth on a network: short (IFNAMSIZ), stable, unique. */
export const hostIfName = (sandboxId: string, network: string): string =>
  `tsv${createHash('sha256').update(`${sandboxId}/${network}`).digest('hex').slice(0, 10)}`;

export function attachInfo(net: NetworkRecord, sb: SandboxRecord, defaultRoute: boolean, owner: string): AttachInfo {
  const att = sb.attachments[net.name]!;
  const info: AttachInfo = { netns: sb.netns!, ifname: att.ifname, hostIf: att.hostIf, defaultRoute, mtu: net.mtu, owner };
  if (att.ipv4 !== undefined && net.ipam !== null) info.ipv4 = { address: att.ipv4, prefix: prefixOf(net.ipam.subnet) };
  if (att.ipv6 !== undefined && net.ipam?.subnet6 !== undefined) info.ipv6 = { address: att.ipv6, prefix: prefixOf(net.ipam.subnet6) };
  if (net.ipam !== null) info.gateway = net.ipam.gateway;
  return info;
}

/**
 * Kernel side of networks and sandboxes: namespaces, bridges, veths and the nft table. `owner`
 * marks the links and namespaces one daemon made, so that reconciling never touches another's;
 * `stateDir` holds its namespace intents. `tunnel` brings this node's WireGuard tunnel up for an
 * encrypted overlay and gives its address (none: encrypted overlays cannot be attached here).
 */
export const dataplane = (owner: string, stateDir: string, netnsPrefix: string, tunnel?: TunnelUp, namespaces = new OwnedNamespaces(owner, join(stateDir, 'netns'))) => {
  /** Table → the ruleset last applied to it: a reconcile pass that renders the same one applies nothing. */
  const applied = new Map<string, string>();
  const overlay = overlayDriver(namespaces, tunnel);
  const driverOf = (net: NetworkRecord): NetworkDriver => (net.driver === 'macvlan' ? macvlanDriver : net.driver === 'overlay' ? overlay : bridgeDriver);
  const infoOf = (net: NetworkRecord): NetworkInfo => networkInfo(net, owner, netnsPrefix);
  return {
    async createNetwork(net: NetworkRecord): Promise<void> {
      if (net.driver !== 'bridge') return driverOf(net).createNetwork(infoOf(net));
      await bridgeDriver.createNetwork(infoOf(net));
      // Lets the host's own 127.0.0.1 reach published ports on this bridge (Docker does the same).
      writeFileSync(`/proc/sys/net/ipv4/conf/${net.device!}/route_localnet`, '1');
    },
    deleteNetwork: (net: NetworkRecord) => driverOf(net).deleteNetwork(infoOf(net)),
    attach: (net: NetworkRecord, sb: SandboxRecord, defaultRoute: boolean) => driverOf(net).attach(infoOf(net), attachInfo(net, sb, defaultRoute, owner)),
    detach: (net: NetworkRecord, sb: SandboxRecord) => driverOf(net).detach(infoOf(net), attachInfo(net, sb, false, owner)),

    /**
     * Removes what this daemon made but its state no longer names (left by a crash between a
     * kernel change and the store write): links with its alias, and namespaces with its prefix
     * that carry its mark. A namespace with the prefix that is not marked is someone else's.
     */
    async removeStale(state: DaemonState): Promise<string[]> {
      const keepLinks = new Set([
        ...state.networks.flatMap((n) => [n.device, n.options.parent].filter((d): d is string => d !== undefined)),
        ...state.sandboxes.flatMap((s) => Object.values(s.attachments).map((a) => a.hostIf)),
      ]);
      const keepNetns = new Set([
        ...state.sandboxes.flatMap((s) => (s.netns === undefined ? [] : [s.netns])),
        // An overlay's namespace stays while one of this node's sandboxes is on it.
        ...state.networks.filter((n) => n.driver === 'overlay' && state.sandboxes.some((s) => n.name in s.attachments)).map((n) => overlayNetns(netnsPrefix, n.id)),
      ]);
      const removed: string[] = [];
      for (const link of await ipJson<{ ifname: string; ifalias?: string }[]>(['link', 'show'])) {
        if (link.ifalias !== owner || keepLinks.has(link.ifname)) continue;
        await ipBatch([['link', 'del', 'dev', link.ifname]]).catch(() => {});
        removed.push(link.ifname);
      }
      const named = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
      for (const ns of named.filter((n) => n.startsWith(netnsPrefix) && !keepNetns.has(n))) {
        if (!(await namespaces.isOurs(ns))) continue;
        await namespaces.remove(ns).catch(() => {});
        rmSync(filesDir(ns), { recursive: true, force: true });
        removed.push(ns);
      }
      namespaces.forgetGone(keepNetns);
      return removed;
    },

    /** The whole firewall for these networks in one transaction; the table goes when none is left. */
    async applyFirewall(table: string, networks: readonly NetworkRecord[], sandboxes: readonly SandboxRecord[], ports: readonly PublishRule[]): Promise<void> {
      const bridges = networks.filter((n) => n.driver === 'bridge' && n.ipam !== null && n.device !== undefined);
      if (bridges.length === 0) {
        applied.delete(table);
        const stdout = await toolOutput(systemTool('nft'), ['list', 'tables']);
        if (stdout.includes(`table inet ${table}\n`)) await nftApply(renderDelete(table));
        return;
      }
      const rules = bridges.map((n) => ({
        network: n.name,
        bridge: n.device!,
        subnet: n.ipam!.subnet,
        internal: n.internal,
        icc: !iccOff(n),
        // Only icc=false names its ports (see BridgeRules); listing them for every bridge on every change grew with the sandboxes.
        ports: iccOff(n) ? sandboxes.flatMap((s) => (s.attachments[n.name] === undefined ? [] : [s.attachments[n.name]!.hostIf])) : [],
      }));
      const ruleset = renderRuleset(table, rules, ports);
      if (applied.get(table) === ruleset) return;
      applied.delete(table);
      await nftApply(ruleset);
      applied.set(table, ruleset);
      if (bridges.some((n) => !n.internal)) writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    },

    /** The rules in the kernel that implement `network` (by their comment), for troubleshooting. */
    async listRules(table: string, network: string): Promise<string[]> {
      const rules: string[] = [];
      for (const family of ['inet', 'bridge']) {
        const stdout = await toolOutput(systemTool('nft'), ['list', 'table', family, table]).catch(() => '');
        let chain = '';
        for (const line of stdout.split('\n')) {
          const c = /^\s*chain (\S+)/.exec(line);
          if (c !== null) chain = c[1]!;
          if (line.includes(`comment "${network}"`)) rules.push(`${family} ${table} ${chain}: ${line.trim().replace(` comment "${network}"`, '')}`);
        }
      }
      return rules;
    },

    /** A namespace of tsnet's own, or a runtime's adopted by bind-mounting it under /run/netns; true when tsnet made a new one. */
    async createNetns(name: string, adopt?: string): Promise<boolean> {
      if (existsSync(netnsPath(name))) return false;
      if (adopt !== undefined) {
        if (!existsSync(adopt)) throw new Error(`namespace ${adopt} does not exist`);
        await namespaces.adopt(name, adopt);
        return false;
      }
      await namespaces.create(name);
      return true;
    },

    loopbackUp: (netns: string) => ipBatch([['link', 'set', 'dev', 'lo', 'up']], netns),

    async deleteNetns(name: string, owned: boolean): Promise<void> {
      if (!existsSync(netnsPath(name))) return;
      await (owned ? namespaces.remove(name) : namespaces.release(name));
    },
  };
};

export type Dataplane = ReturnType<typeof dataplane>;
