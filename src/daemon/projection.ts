import type { SandboxFiles } from '../netns/sandbox-files.js';
import type { PublishRule } from '../net/nft/ruleset.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';
import { weightedSlots, type ServiceRecord } from './services.js';

/**
 * The DNAT rules for every published port: to the sandbox's address on its first bridge network
 * that is not internal (internal networks take no published ports).
 */
export function publishRules(networks: readonly NetworkRecord[], sandboxes: readonly SandboxRecord[], services: readonly ServiceRecord[] = []): PublishRule[] {
  const byName = new Map(networks.map((n) => [n.name, n]));
  const ofSandboxes = sandboxes.flatMap((sb) => {
    if (sb.ports === undefined || sb.ports.length === 0) return [];
    const target = Object.entries(sb.attachments)
      .map(([name, a]) => ({ net: byName.get(name), a }))
      .find(({ net, a }) => net !== undefined && !net.internal && net.device !== undefined && a.ipv4 !== undefined);
    if (target === undefined) return [];
    return sb.ports.map((p) => ({ ...p, targets: [{ ip: target.a.ipv4!, port: p.port }], bridge: target.net!.device!, owner: sb.name }));
  });
  // A service's published port is balanced over its serving tasks (a routing mesh on one host).
  const ofServices = services.flatMap((svc) => {
    const net = networks.find((n) => n.name === svc.network);
    // An overlay's published ports go through the routing mesh (ingress.ts), not a bridge of this host.
    if (net?.device === undefined || net.internal || net.driver === 'overlay') return [];
    const slots = weightedSlots(svc.tasks);
    return (svc.publish ?? []).map((p) => ({ ...p, targets: slots.map((ip) => ({ ip, port: p.port })), bridge: net.device!, owner: svc.name }));
  });
  return [...ofSandboxes, ...ofServices];
}

/** The networks whose names a sandbox's resolver answers. */
export const dnsScope = (state: DaemonState, sb: SandboxRecord): string[] =>
  Object.keys(sb.attachments).filter((n) => state.networks.find((x) => x.name === n)?.dns === true);

/** The address another sandbox is reached at from `sb`: on a shared network first, else any. */
function addressFor(target: SandboxRecord, sb: SandboxRecord): string | undefined {
  const shared = Object.keys(sb.attachments).find((n) => target.attachments[n]?.ipv4 !== undefined);
  return (shared === undefined ? Object.values(target.attachments).find((a) => a.ipv4 !== undefined) : target.attachments[shared])?.ipv4;
}

/** resolv.conf, hosts and hostname for a sandbox, with Docker's --link entries. */
export function sandboxFiles(state: DaemonState, sb: SandboxRecord, hostSearch: readonly string[]): SandboxFiles {
  const own = Object.values(sb.attachments).flatMap((a) => (a.ipv4 === undefined ? [] : [{ ip: a.ipv4, names: [sb.hostname] }]));
  const links = sb.links.flatMap((l) => {
    const target = state.sandboxes.find((s) => s.name === l.name);
    const ip = target === undefined ? undefined : addressFor(target, sb);
    return ip === undefined || target === undefined ? [] : [{ ip, names: [...new Set([l.alias, target.id.slice(0, 12), target.name])] }];
  });
  return { hostname: sb.hostname, search: sb.dnsSearch.length > 0 ? sb.dnsSearch : hostSearch, options: sb.dnsOptions, hosts: [...links, ...own] };
}

/** The environment Docker gives a container for each --link (ALIAS_NAME=/sandbox/alias). */
export const linkEnv = (sb: SandboxRecord): Record<string, string> =>
  Object.fromEntries(sb.links.map((l) => [`${l.alias.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_NAME`, `/${sb.name}/${l.alias}`]));
