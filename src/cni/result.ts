import { isIPv6 } from 'node:net';
import type { NetConf } from './config.js';
import type { NetworkView, SandboxView } from './daemon.js';
import type { InterfaceFacts } from './kernel.js';
import type { CniInterface, CniIp, CniResult } from './types.js';

/** The resolver tsnet puts in every sandbox: the one nameserver a container is given. */
export const RESOLVER = '127.0.0.11';

/** The sandbox's addresses on the network, with their prefix and the subnet's gateway, as the daemon holds them. */
export function addressesOn(sb: SandboxView, net: NetworkView): { address: string; gateway?: string }[] {
  const mine = net.Containers[sb.Id];
  const gatewayOf = (address: string): string | undefined => net.IPAM.Config.find((c) => isIPv6(c.Subnet.split('/')[0]!) === isIPv6(address.split('/')[0]!))?.Gateway;
  return [mine?.IPv4Address ?? '', mine?.IPv6Address ?? ''].filter((a) => a !== '').map((address) => {
    const gateway = gatewayOf(address);
    return gateway === undefined ? { address } : { address, gateway };
  });
}

/** What ADD made, read back from the daemon and the kernel. */
export interface Attached {
  sandbox: SandboxView;
  network: NetworkView;
  ifname: string;
  /** CNI_NETNS, as the runtime named it. */
  netnsPath: string;
  inside: InterfaceFacts;
  /** The host end's name and MAC, when it is a link in the host's namespace (a veth). */
  host?: { name: string; mac: string };
}

/**
 * The ADD result: the host end and the container's interface, its addresses and the routes
 * through a gateway, and 127.0.0.11 as the one nameserver. After a previous plugin's result
 * (`prevResult`), tsnet's interfaces, addresses and routes come after its own and its DNS
 * replaces the previous one: the container is to ask tsnet's resolver.
 */
export function addResult(conf: NetConf, a: Attached): CniResult {
  const prev = conf.prevResult;
  const before = prev?.interfaces ?? [];
  const ours: CniInterface[] = [...(a.host === undefined ? [] : [a.host]), { name: a.ifname, mac: a.inside.mac, sandbox: a.netnsPath }];
  const index = before.length + ours.length - 1;
  const ips: CniIp[] = addressesOn(a.sandbox, a.network).map((ip) => ({ ...ip, interface: index }));
  const result: CniResult = {
    cniVersion: conf.cniVersion,
    interfaces: [...before, ...ours],
    ips: [...(prev?.ips ?? []), ...ips],
    routes: [...(prev?.routes ?? []), ...a.inside.routes],
    dns: {
      nameservers: [RESOLVER],
      ...(conf.domain === undefined ? {} : { domain: conf.domain }),
      search: a.sandbox.DnsSearch,
      options: a.sandbox.DnsOptions,
    },
  };
  return inVersion(result);
}

/** Before 1.0.0 every address also says its family (`version`); 1.0.0 dropped the field. */
export function inVersion(result: CniResult): CniResult {
  if (!result.cniVersion.startsWith('0.')) return result;
  return { ...result, ips: (result.ips ?? []).map((ip) => ({ ...ip, version: isIPv6(ip.address.split('/')[0]!) ? '6' : '4' })) };
}
