import { createHash } from 'node:crypto';
import { GATEWAY_BRIDGE } from '../daemon/gateway-bridge.js';
import type { AttachRequest } from '../daemon/requests.js';
import { namedNetns } from '../netns/paths.js';
import { NAME } from '../registry/validate.js';
import { SUPPORTED_VERSIONS, type NetConf } from './config.js';
import { Daemon, type NetworkView, type SandboxView } from './daemon.js';
import type { Invocation } from './env.js';
import { Code, CniError } from './errors.js';
import { hostMac, interfaceFacts, sameNamespace } from './kernel.js';
import { addressesOn, addResult, type Attached } from './result.js';
import type { CniResult, CniVersionResult } from './types.js';

/**
 * The sandbox that stands for a container: one per CNI_CONTAINERID, whatever networks it joins
 * (one namespace holds one resolver at 127.0.0.11). Its name is made from the id (runtimes' ids
 * are 64 hex, past the 63 of a tsnet name): the id's first 12 characters, readable beside
 * `crictl ps`, and 8 hex of its hash, so that ids sharing a beginning do not meet.
 */
export const sandboxName = (containerId: string): string => `cni-${containerId.slice(0, 12)}-${createHash('sha256').update(containerId).digest('hex').slice(0, 8)}`;

/** The network named in the config (code 7 when the daemon has none). */
async function networkOf(daemon: Daemon, conf: NetConf): Promise<NetworkView> {
  const net = await daemon.network(conf.network);
  if (net === undefined) throw new CniError(Code.invalidConfig, `network ${conf.network} not found on the tsnet daemon at ${conf.socket}: create it first (tsnet network create)`);
  return net;
}

/** The container's own name (CNI_ARGS K8S_POD_NAME, as podman and Kubernetes pass it), when it can be a tsnet name. */
function podName(inv: Invocation): string | undefined {
  const name = inv.args.get('K8S_POD_NAME');
  if (name === undefined || name === '') return undefined;
  if (NAME.test(name)) return name;
  process.stderr.write(`tsnet-cni: K8S_POD_NAME ${JSON.stringify(name.slice(0, 80))} is not a tsnet name (up to 63 of letters, digits, '_', '.', '-'): the container is not known by it\n`);
  return undefined;
}

/** Where the daemon mounted the sandbox's (adopted) namespace. */
const mountOf = (sb: SandboxView): string | undefined => (sb.NetnsName === null ? undefined : namedNetns(sb.NetnsName));

/**
 * ADD: a sandbox adopting CNI_NETNS with its interface CNI_IFNAME on the network, or, for a
 * container already there, a connect. The same ADD again (same network, interface, namespace)
 * answers the same result; one that conflicts with the sandbox is refused (code 100). The
 * daemon undoes a change it could not finish, so a failed ADD leaves nothing behind.
 */
export async function add(inv: Invocation, conf: NetConf): Promise<CniResult> {
  const daemon = new Daemon(conf.socket);
  const net = await networkOf(daemon, conf);
  const netns = inv.netns!;
  const name = sandboxName(inv.containerId);
  const alias = podName(inv);
  const attach: Omit<AttachRequest, 'network'> = {
    ifname: inv.ifname,
    aliases: [...new Set([...(alias === undefined ? [] : [alias]), ...conf.aliases])],
    ...(conf.ip === undefined ? {} : { ip: conf.ip }),
    ...(conf.ip6 === undefined ? {} : { ip6: conf.ip6 }),
  };
  const create = { name, netns, networks: [{ network: net.Name, ...attach }], dns: conf.upstreams, dnsSearch: conf.search, dnsOptions: conf.options };
  let existing = await daemon.sandbox(name);
  // A runtime may ADD a container's networks in parallel (containerd's go-cni does): the ADD whose
  // create finds the name taken joins the sandbox the other one made.
  if (existing === undefined && (await daemon.createSandbox(create)) === undefined) existing = await daemon.sandbox(name);
  if (existing !== undefined) await join(daemon, inv, net, existing, attach);
  return addResult(conf, await readBack(daemon, conf, name, inv));
}

/** ADD for a container that has its sandbox: a connect, unless it is on the network already as asked. */
async function join(daemon: Daemon, inv: Invocation, net: NetworkView, sb: SandboxView, attach: Omit<AttachRequest, 'network'>): Promise<void> {
  const mount = mountOf(sb);
  if (mount === undefined || !sameNamespace(mount, inv.netns!)) throw new CniError(Code.refused, `container ${inv.containerId} is on tsnet already (sandbox ${sb.Name}) in another namespace than CNI_NETNS ${inv.netns!}`);
  const here = sb.Networks[net.Name];
  if (here !== undefined && here.Interface !== inv.ifname) throw new CniError(Code.refused, `container ${inv.containerId} is on network ${net.Name} already as interface ${here.Interface}, not ${inv.ifname}`);
  const clash = Object.entries(sb.Networks).find(([n, a]) => a.Interface === inv.ifname && n !== net.Name);
  if (clash !== undefined) throw new CniError(Code.refused, `container ${inv.containerId} has interface ${inv.ifname} on network ${clash[0]} already`);
  if (here === undefined) await daemon.connect(net.Name, sb.Name, attach);
}

/** The sandbox, network and interface as they are after ADD. */
async function readBack(daemon: Daemon, conf: NetConf, name: string, inv: Invocation): Promise<Attached> {
  const [sandbox, network] = [await daemon.sandbox(name), await networkOf(daemon, conf)];
  const att = sandbox?.Networks[network.Name];
  if (sandbox === undefined || att === undefined || sandbox.NetnsName === null) throw new CniError(Code.refused, `sandbox ${name} was removed while ADD ran`);
  const inside = await interfaceFacts(sandbox.NetnsName, inv.ifname);
  if (inside === undefined) throw new CniError(Code.refused, `sandbox ${name}: interface ${inv.ifname} is not in its namespace after the daemon attached it`);
  const mac = await hostMac(att.HostInterface);
  return { sandbox, network, ifname: inv.ifname, netnsPath: inv.netns!, inside, ...(mac === undefined ? {} : { host: { name: att.HostInterface, mac } }) };
}

/**
 * DEL: the container's interface on the network goes, and with its last network the sandbox
 * (the daemon unmounts the runtime's namespace, never deletes it). Whatever is gone already
 * (sandbox, network, attachment) is done: a DEL succeeds as often as it is repeated.
 */
export async function del(inv: Invocation, conf: NetConf): Promise<void> {
  const daemon = new Daemon(conf.socket);
  const name = sandboxName(inv.containerId);
  const sb = await daemon.sandbox(name);
  const net = sb === undefined ? undefined : await daemon.network(conf.network);
  const att = net === undefined ? undefined : sb?.Networks[net.Name];
  if (sb === undefined || net === undefined || att === undefined || att.Interface !== inv.ifname) return;
  if (userNetworks(sb, net.Name).length > 0) {
    await daemon.disconnect(net.Name, name);
    // A DEL of the container's other network, run in parallel, may have seen this one still there.
    const left = await daemon.sandbox(name);
    if (left === undefined || userNetworks(left).length > 0) return;
  }
  await daemon.removeSandbox(name);
}

/** The networks the runtime put the sandbox on (but `except`): not the gateway bridge tsnet adds for overlays. */
const userNetworks = (sb: SandboxView, except?: string): string[] => Object.keys(sb.Networks).filter((n) => n !== except && n !== GATEWAY_BRIDGE);

/**
 * CHECK: the container's sandbox is there, in CNI_NETNS, with interface CNI_IFNAME up and holding
 * its addresses, which are the ones ADD returned (prevResult). A sandbox or attachment that is
 * gone is code 3; anything else not as ADD left it is code 101.
 */
export async function check(inv: Invocation, conf: NetConf): Promise<void> {
  const daemon = new Daemon(conf.socket);
  const name = sandboxName(inv.containerId);
  const sb = await daemon.sandbox(name);
  if (sb === undefined) throw new CniError(Code.unknownContainer, `container ${inv.containerId} is not on tsnet: no sandbox ${name}`);
  const net = await networkOf(daemon, conf);
  const att = sb.Networks[net.Name];
  if (att === undefined || att.Interface !== inv.ifname) throw new CniError(Code.unknownContainer, `container ${inv.containerId} has no interface ${inv.ifname} on network ${net.Name}`);
  const notAsAdded = (what: string): CniError => new CniError(Code.notAsAdded, `container ${inv.containerId} (sandbox ${name}): ${what}`);
  const mount = mountOf(sb);
  if (mount === undefined || !sameNamespace(mount, inv.netns!)) throw notAsAdded(`its sandbox is not in CNI_NETNS ${inv.netns!}`);
  const inside = await interfaceFacts(sb.NetnsName!, inv.ifname);
  if (inside === undefined) throw notAsAdded(`interface ${inv.ifname} is gone from its namespace`);
  if (!inside.up) throw notAsAdded(`interface ${inv.ifname} is down`);
  const expected = addressesOn(sb, net).map((a) => a.address);
  for (const a of expected) if (!inside.addresses.includes(a)) throw notAsAdded(`interface ${inv.ifname} lacks its address ${a} (it has ${inside.addresses.join(', ') || 'none'})`);
  const prev = conf.prevResult;
  if (prev === undefined) return;
  const index = (prev.interfaces ?? []).findIndex((i) => i.name === inv.ifname && i.sandbox === inv.netns);
  if (index < 0) throw notAsAdded(`prevResult names no interface ${inv.ifname} in ${inv.netns!}`);
  const reported = (prev.ips ?? []).filter((ip) => ip.interface === index).map((ip) => ip.address).sort();
  if (reported.join() !== [...expected].sort().join()) throw notAsAdded(`prevResult's addresses (${reported.join(', ') || 'none'}) are not the sandbox's (${expected.join(', ')})`);
}

/** VERSION: the versions whose configuration and result tsnet-cni speaks. */
export const version = (): CniVersionResult => ({ cniVersion: '1.0.0', supportedVersions: [...SUPPORTED_VERSIONS] });
