import { randomBytes } from 'node:crypto';
import { Cidr } from '../net/ipam/cidr.js';
import { allocateAddress, planSubnet, type AddressSpace, type HostSubnet } from '../net/ipam/ipam.js';
import { vlanOf } from '../net/drivers/macvlan.js';
import { VXLAN_OVERHEAD, WIREGUARD_OVERHEAD } from '../net/drivers/overlay.js';
import type { HostFacts } from '../net/link/host.js';
import { checkBridgeName, checkIfname, checkParent } from '../net/link/names.js';
import { domainName, ipAddress, name as validName, NAME, RecordsError, resolvOption, show } from '../registry/validate.js';
import { hostIfName } from './dataplane.js';
import { parseExpose, parsePublish, type PortMapping } from '../net/ports/spec.js';
import { badRequest, conflict, forbidden, notFound } from './errors.js';
import type { AttachRequest, NetworkCreate, SandboxCreate } from './requests.js';
import type { DaemonState, IpamRecord, NetworkRecord, SandboxRecord } from './state.js';

/**
 * Turning requests into records: every check a change must pass before the kernel is touched,
 * with Docker's error texts. Pure: reads the state, changes nothing but the records it returns.
 */

const newId = (): string => randomBytes(32).toString('hex');

/**
 * Checks each value with the records file's own validator (what the daemon publishes must pass
 * it), as a 400 that names the request field.
 */
function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw err instanceof RecordsError ? badRequest(err.message) : err;
  }
}

const fields = <T>(values: readonly unknown[] | undefined, path: string, check: (v: unknown, path: string) => T): T[] =>
  checked(() => (values ?? []).map((v, i) => check(v, `${path}[${i}]`)));

/** Modes whose sandbox has a namespace (and files) of its own; host and container: share one. */
export const ownNamespace = (mode: SandboxRecord['mode']): boolean => mode === 'networks' || mode === 'none';

/** A network by name, id or id prefix (3+ characters), as Docker resolves them. */
export function findNetwork(state: DaemonState, ref: string): NetworkRecord {
  const net = state.networks.find((n) => n.name === ref || n.id === ref) ?? state.networks.find((n) => ref.length >= 3 && n.id.startsWith(ref));
  if (net === undefined) throw notFound(`network ${ref} not found`);
  return net;
}

export function findSandbox(state: DaemonState, ref: string): SandboxRecord {
  const sb = state.sandboxes.find((s) => s.name === ref || s.id === ref) ?? state.sandboxes.find((s) => ref.length >= 3 && s.id.startsWith(ref));
  if (sb === undefined) throw notFound(`sandbox ${ref} not found`);
  return sb;
}

/** Names of the links tsnet made for the networks and sandboxes in the state (never to be reused). */
function tsnetLinks(state: DaemonState): Set<string> {
  return new Set([
    ...state.networks.flatMap((n) => (n.device === undefined ? [] : [n.device])),
    ...state.sandboxes.flatMap((s) => Object.values(s.attachments).map((a) => a.hostIf)),
  ]);
}

/** IPv4 (and IPv6) address spaces for `req`, clear of the other networks, special ranges and the host's own subnets. */
function planIpam(state: DaemonState, req: NetworkCreate, host: readonly HostSubnet[]): IpamRecord {
  const spaces = state.networks.filter((n) => n.ipam !== null).map((n): AddressSpace => ({ network: n.name, subnet: n.ipam!.subnet }));
  const spaces6 = state.networks.filter((n) => n.ipam?.subnet6 !== undefined).map((n): AddressSpace => ({ network: n.name, subnet: n.ipam!.subnet6! }));
  try {
    const v4 = planSubnet(req.name, { subnet: req.subnet, gateway: req.gateway, ipRange: req.ipRange }, spaces, { host });
    const v6 = req.subnet6 === undefined ? undefined : planSubnet(req.name, { subnet: req.subnet6, gateway: req.gateway6 }, spaces6, { host });
    return { subnet: v4.subnet, gateway: v4.gateway, ...(v4.ipRange === undefined ? {} : { ipRange: v4.ipRange }), ...(v6 === undefined ? {} : { subnet6: v6.subnet, gateway6: v6.gateway }) };
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/** A bridge's device, or a macvlan network's host shim (only when one is asked for), its name checked. */
function planDevice(state: DaemonState, req: NetworkCreate, driver: NetworkRecord['driver'], id: string, host?: HostFacts): string | undefined {
  const options = req.options ?? {};
  try {
    if (driver === 'macvlan') {
      checkParent(options.parent!, tsnetLinks(state), host);
      return options.shim === undefined ? undefined : `tsmv-${id.slice(0, 10)}`;
    }
    // Its VXLAN device is named once its VNI is claimed (vxlanDevice).
    if (driver === 'overlay') return undefined;
    const named = options['com.docker.network.bridge.name'];
    if (named !== undefined) checkBridgeName(named, tsnetLinks(state), host);
    return named ?? `tsbr-${id.slice(0, 10)}`;
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}


/** An overlay's VXLAN device in the host namespace before it moves: 15 characters, like Docker's `vx-%06x-<id5>`. */
export const vxlanDevice = (vni: number, id: string): string => `vx-${vni.toString(16).padStart(6, '0')}-${id.slice(0, 5)}`;

/**
 * A network record for `req`: name, driver, MTU, interface names and IPAM checked against the
 * others and, for a request from the API, against `host` (its interfaces and subnets).
 */
export function planNetwork(state: DaemonState, req: NetworkCreate, dns: boolean, node: string, host?: HostFacts): NetworkRecord {
  if (typeof req.name !== 'string' || !NAME.test(req.name)) throw badRequest(`invalid network name ${show(req.name)}: letters, digits, '_', '.', '-'`);
  if (state.networks.some((n) => n.name === req.name)) throw conflict(`network with name ${req.name} already exists`);
  if (req.name === 'host' || req.name === 'none') throw forbidden(`${req.name} is a pre-defined network mode and cannot be created`);
  const driver = req.driver ?? 'bridge';
  if (driver !== 'bridge' && driver !== 'macvlan' && driver !== 'overlay') throw badRequest(`driver ${show(driver)} is not supported (bridge, macvlan, overlay)`);
  const scope = req.scope ?? (driver === 'overlay' ? 'swarm' : 'local');
  if (scope !== 'local' && scope !== 'swarm') throw badRequest(`scope ${show(scope)} is not local or swarm`);
  if (driver === 'overlay' && scope !== 'swarm') throw badRequest('an overlay network spans the cluster: its scope is swarm');
  if (driver === 'macvlan' && req.options?.parent === undefined) throw badRequest('macvlan needs -o parent=IFACE or parent=IFACE.VLAN');
  if (driver !== 'macvlan' && req.options?.parent !== undefined) throw badRequest('-o parent is a macvlan option');
  if (driver !== 'overlay' && req.attachable === true) throw badRequest('--attachable is an overlay option');
  // `docker network create --opt encrypted` sends an empty value, which Docker takes as true.
  const encrypted = req.options?.encrypted === '' ? 'true' : req.options?.encrypted;
  if (encrypted !== undefined && (driver !== 'overlay' || (encrypted !== 'true' && encrypted !== 'false'))) throw badRequest(`-o encrypted=${show(encrypted)}: an overlay option, true or false`);
  const mtuText = req.options?.['com.docker.network.driver.mtu'] ?? '1500';
  const linkMtu = /^\d{1,5}$/.test(mtuText) ? Number(mtuText) : NaN;
  if (!(linkMtu >= 576 && linkMtu <= 65535)) throw badRequest(`com.docker.network.driver.mtu: ${show(mtuText)} is not a decimal integer from 576 to 65535`);
  // As Docker's overlay: the option (or 1500) is the underlay's, less VXLAN's 50 bytes, and less
  // WireGuard's 60 when the VXLAN travels inside it.
  const mtu = driver === 'overlay' ? linkMtu - VXLAN_OVERHEAD - (encrypted === 'true' ? WIREGUARD_OVERHEAD : 0) : linkMtu;
  const parent = driver === 'macvlan' ? req.options!.parent! : undefined;
  // A macvlan network shares its parent's segment, so the parent's own subnet is expected.
  const hostSubnets = (host?.subnets ?? []).filter((h) => parent === undefined || (h.dev !== parent && h.dev !== vlanOf(parent)?.base));
  const ipam = planIpam(state, req, hostSubnets);
  const id = newId();
  const device = planDevice(state, req, driver, id, host);
  if (req.options?.shim !== undefined && !Cidr.parse(ipam.subnet).contains(req.options.shim)) throw badRequest(`shim ${show(req.options.shim)} is outside subnet ${ipam.subnet}`);
  return {
    id,
    name: req.name,
    driver,
    scope,
    ...(scope === 'local' ? { node } : {}),
    created: new Date().toISOString(),
    internal: req.internal === true,
    dns,
    ipam,
    ...(device === undefined ? {} : { device }),
    ...(driver === 'overlay' ? { attachable: req.attachable === true } : {}),
    mtu,
    labels: req.labels ?? {},
    options: { ...req.options, ...(encrypted === undefined ? {} : { encrypted }) },
  };
}

function planPorts(req: SandboxCreate): PortMapping[] {
  try {
    return [...(req.publish ?? []).map(parsePublish), ...(req.publishAll === true ? (req.expose ?? []).map(parseExpose) : [])];
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/** Addresses on a network that the state does not hold but the caller knows are taken (other nodes' endpoints on a swarm network). */
export type TakenElsewhere = (net: NetworkRecord) => Iterable<string>;

/** A sandbox record for `req`, its addresses allocated; its namespace and links are made after. */
export function planSandbox(state: DaemonState, req: SandboxCreate, netnsPrefix: string, elsewhere: TakenElsewhere = () => []): SandboxRecord {
  if (typeof req.name !== 'string' || !NAME.test(req.name)) throw badRequest(`invalid sandbox name ${show(req.name)}: letters, digits, '_', '.', '-'`);
  if (state.sandboxes.some((s) => s.name === req.name)) throw conflict(`sandbox name ${req.name} is already in use`);
  const id = newId();
  const wanted = req.networks ?? [{ network: 'bridge' }];
  const special = wanted.find((w) => w.network === 'host' || w.network === 'none' || w.network.startsWith('container:'));
  if (special !== undefined && ((req.publish ?? []).length > 0 || req.publishAll === true)) throw badRequest(`ports cannot be published with ${special.network} networking`);
  if (special !== undefined && wanted.length > 1) throw badRequest(`${special.network} networking cannot be combined with other networks`);
  const shared = special?.network.startsWith('container:') === true ? findSandbox(state, special.network.slice('container:'.length)) : undefined;
  if (shared !== undefined && (req.netns !== undefined || req.pid !== undefined)) throw badRequest('container: networking cannot adopt a namespace too');
  const hostname = req.hostname === undefined ? undefined : checked(() => validName(req.hostname, 'hostname'));
  const aliases = fields(req.aliases, 'aliases', validName);
  const dns = fields(req.dns, 'dns', ipAddress);
  const dnsSearch = fields(req.dnsSearch, 'dnsSearch', domainName);
  const dnsOptions = fields(req.dnsOptions, 'dnsOptions', resolvOption);
  const links = (req.links ?? []).map((l, i) => {
    const [name = '', alias = name, ...rest] = l.split(':');
    if (rest.length > 0) throw badRequest(`links[${i}]: ${show(l)} is not NAME or NAME:ALIAS`);
    checked(() => validName(alias, `links[${i}].alias`));
    if (!state.sandboxes.some((s) => s.name === name)) throw badRequest(`--link ${l}: no sandbox named ${name}`);
    return { name, alias };
  });
  const mode: SandboxRecord['mode'] = special === undefined ? 'networks' : shared !== undefined ? `container:${shared.name}` : (special.network as 'host' | 'none');
  const netns = mode === 'host' ? undefined : shared !== undefined ? shared.netns : `${netnsPrefix}${req.name}`;
  const sb: SandboxRecord = {
    id,
    name: req.name,
    created: new Date().toISOString(),
    hostname: hostname ?? id.slice(0, 12),
    mode,
    ...(netns === undefined ? {} : { netns }),
    ownsNetns: ownNamespace(mode) && req.netns === undefined && req.pid === undefined,
    aliases,
    dns,
    dnsSearch,
    dnsOptions,
    links,
    attachments: {},
    ports: planPorts(req),
    fileHashes: {},
  };
  for (const w of special === undefined ? wanted : []) {
    const net = findNetwork(state, w.network);
    if (net.name in sb.attachments) throw badRequest(`network ${net.name} is given twice`);
    attachRecord(state, sb, net, w, elsewhere);
  }
  return sb;
}

/** Every address taken on a network: sandboxes' addresses, VIPs and tasks' addresses, and what `elsewhere` adds. */
export function usedAddresses(state: DaemonState, net: NetworkRecord, elsewhere: TakenElsewhere = () => []): Set<string> {
  const network = net.name;
  const used = new Set<string>(elsewhere(net));
  const add = (a: string | undefined): void => void (a === undefined || used.add(a));
  for (const s of state.sandboxes) {
    const att = s.attachments[network];
    if (att !== undefined) add(att.ipv4), add(att.ipv6);
  }
  for (const svc of state.services ?? []) if (svc.network === network) add(svc.vip), svc.tasks.forEach((t) => add(t.ipv4));
  return used;
}

/** Where a network's IPv4 endpoint addresses come from: its subnet, or the part of it `--ip-range` gives. */
export const addressSpace = (net: NetworkRecord): AddressSpace => ({ network: net.name, subnet: net.ipam!.subnet, gateway: net.ipam!.gateway, ipRange: net.ipam!.ipRange });

/**
 * Allocates addresses and an interface for `sb` on `net` (records only; the kernel comes after).
 * On a swarm network the address is only a plan, which the claim in the store confirms: the
 * closer the plan is to the store, the fewer claims lose and fall back to reading every claim.
 */
export function attachRecord(state: DaemonState, sb: SandboxRecord, net: NetworkRecord, req: AttachRequest, elsewhere: TakenElsewhere = () => []): void {
  const aliases = fields(req.aliases, `network ${net.name}: aliases`, validName);
  const inUse = usedAddresses(state, net, elsewhere);
  for (const a of Object.values(sb.attachments)) for (const ip of [a.ipv4, a.ipv6]) if (ip !== undefined) inUse.add(ip);
  try {
    const ipv4 = allocateAddress(addressSpace(net), inUse, req.ip);
    const ipv6 =
      net.ipam?.subnet6 === undefined ? undefined : allocateAddress({ network: net.name, subnet: net.ipam.subnet6, gateway: net.ipam.gateway6 }, inUse, req.ip6);
    const ifname = interfaceName(sb, net, req.ifname);
    sb.attachments[net.name] = {
      ...(ipv4 === undefined ? {} : { ipv4 }),
      ...(ipv6 === undefined ? {} : { ipv6 }),
      aliases,
      ifname,
      hostIf: hostIfName(sb.id, net.name),
      endpointId: newId(),
    };
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/**
 * The name of `sb`'s interface on `net`: the one asked for (checked: the kernel's syntax, not
 * `lo`, not another attachment's), or the first ethN no attachment has.
 */
function interfaceName(sb: SandboxRecord, net: NetworkRecord, wanted: string | undefined): string {
  const used = new Set(Object.values(sb.attachments).map((a) => a.ifname));
  if (wanted !== undefined) {
    checkIfname(wanted, `network ${net.name}: ifname`);
    if (wanted === 'lo') throw new Error(`network ${net.name}: ifname lo is the sandbox's loopback`);
    if (used.has(wanted)) throw new Error(`network ${net.name}: ifname ${wanted} is the sandbox's interface on another network`);
    return wanted;
  }
  let n = 0;
  while (used.has(`eth${n}`)) n++;
  return `eth${n}`;
}
