import type { AttachRequest, NetworkCreate, SandboxCreate } from '../daemon/requests.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from '../daemon/state.js';
import { badRequest } from '../daemon/errors.js';
import { macOf } from '../net/drivers/bridge.js';
import { show } from '../registry/validate.js';
import { boolean, defined, integer, list, object, record, string, stringMap, strings, type Json } from './fields.js';

/** A network in the Docker Engine API's shape (`GET /networks/{id}`). */
export function dockerNetwork(net: NetworkRecord, state: DaemonState): Json {
  const containers: Json = {};
  for (const sb of state.sandboxes) {
    const a = sb.attachments[net.name];
    if (a === undefined) continue;
    const prefix = net.ipam?.subnet.split('/')[1];
    const prefix6 = net.ipam?.subnet6?.split('/')[1];
    containers[sb.id] = {
      Name: sb.name,
      EndpointID: a.endpointId,
      // A macvlan's MAC is the kernel's: not known without asking it.
      MacAddress: net.driver !== 'macvlan' && a.ipv4 !== undefined ? macOf(a.ipv4) : '',
      IPv4Address: a.ipv4 === undefined ? '' : `${a.ipv4}/${prefix}`,
      IPv6Address: a.ipv6 === undefined ? '' : `${a.ipv6}/${prefix6}`,
    };
  }
  const config: Json[] = [];
  if (net.ipam !== null) {
    config.push({ Subnet: net.ipam.subnet, Gateway: net.ipam.gateway, ...(net.ipam.ipRange === undefined ? {} : { IPRange: net.ipam.ipRange }) });
    if (net.ipam.subnet6 !== undefined) config.push({ Subnet: net.ipam.subnet6, Gateway: net.ipam.gateway6 });
  }
  return {
    Name: net.name,
    Id: net.id,
    Created: net.created,
    Scope: net.scope,
    Driver: net.driver,
    EnableIPv4: net.ipam !== null,
    EnableIPv6: net.ipam?.subnet6 !== undefined,
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: net.internal,
    Attachable: net.attachable === true,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    // Docker's overlay lists its VNI this way; a bridge its device.
    Options: { ...net.options, ...(net.vni !== undefined ? { 'com.docker.network.driver.overlay.vxlanid_list': String(net.vni) } : net.device === undefined ? {} : { 'com.docker.network.bridge.name': net.device }) },
    Labels: net.labels,
  };
}

/** One entry of IPAM.Config: a subnet and its gateway (and, for IPv4, an ip-range). */
function ipamConfig(v: unknown, path: string): { subnet?: string; gateway?: string; ipRange?: string } {
  const c = record(v, path);
  // Refused rather than dropped: an address the user reserved must not be handed to a sandbox.
  if (Object.keys(stringMap(c.AuxiliaryAddresses, `${path}.AuxiliaryAddresses`) ?? {}).length > 0) throw badRequest(`${path}.AuxiliaryAddresses: --aux-address is not supported`);
  return defined({ subnet: string(c.Subnet, `${path}.Subnet`), gateway: string(c.Gateway, `${path}.Gateway`), ipRange: string(c.IPRange, `${path}.IPRange`) });
}

/** `POST /networks/create` body → a NetworkCreate (Docker's field names), every field type-checked. */
export function parseNetworkCreate(body: Json): NetworkCreate {
  const ipam = object(body.IPAM, 'IPAM') ?? {};
  const ipamDriver = string(ipam.Driver, 'IPAM.Driver');
  if (ipamDriver !== undefined && ipamDriver !== 'default') throw badRequest(`IPAM.Driver: ${show(ipamDriver)} is not supported (default)`);
  if (Object.keys(stringMap(ipam.Options, 'IPAM.Options') ?? {}).length > 0) throw badRequest('IPAM.Options: --ipam-opt is not supported');
  const configs = list(ipam.Config, 'IPAM.Config', ipamConfig) ?? [];
  const isV6 = (c: { subnet?: string; gateway?: string }): boolean => (c.subnet ?? c.gateway ?? '').includes(':');
  const v4s = configs.filter((c) => !isV6(c));
  const v6s = configs.filter(isV6);
  if (v4s.length > 1 || v6s.length > 1) throw badRequest('IPAM.Config: at most one IPv4 and one IPv6 subnet');
  const [v4, v6] = [v4s[0], v6s[0]];
  const req: NetworkCreate = { name: string(body.Name, 'Name') ?? '' };
  const set = <K extends keyof NetworkCreate>(k: K, v: NetworkCreate[K] | undefined): void => {
    if (v !== undefined) req[k] = v;
  };
  set('driver', string(body.Driver, 'Driver'));
  set('subnet', v4?.subnet);
  set('gateway', v4?.gateway);
  set('ipRange', v4?.ipRange);
  if (v6?.ipRange !== undefined) throw badRequest('IPAM.Config: IPRange is for the IPv4 subnet');
  set('subnet6', v6?.subnet);
  set('gateway6', v6?.gateway);
  set('internal', boolean(body.Internal, 'Internal') === true ? true : undefined);
  set('scope', string(body.Scope, 'Scope'));
  set('attachable', boolean(body.Attachable, 'Attachable') === true ? true : undefined);
  // A network that says it has IPv6 and has none would be a lie: tsnet has no default IPv6 pool.
  const ipv6 = boolean(body.EnableIPv6, 'EnableIPv6');
  if (ipv6 === true && v6 === undefined) throw badRequest('EnableIPv6: tsnet has no default IPv6 pool: give an IPv6 --subnet too');
  if (ipv6 === false && v6 !== undefined) throw badRequest('EnableIPv6 is false but IPAM.Config has an IPv6 subnet');
  boolean(body.CheckDuplicate, 'CheckDuplicate');
  for (const k of ['Ingress', 'ConfigOnly'] as const) if (boolean(body[k], k) === true) throw badRequest(`${k}: ${k === 'Ingress' ? '--ingress' : '--config-only'} networks are not supported`);
  if (string(object(body.ConfigFrom, 'ConfigFrom')?.Network, 'ConfigFrom.Network') !== undefined) throw badRequest('ConfigFrom: --config-from is not supported');
  set('labels', stringMap(body.Labels, 'Labels'));
  set('options', stringMap(body.Options, 'Options'));
  return req;
}

const IFNAME_OPT = 'com.docker.network.endpoint.ifname';

/** `POST /networks/{id}/connect` body → (sandbox, attach request). */
export function parseConnect(body: Json): { sandbox: string; attach: Omit<AttachRequest, 'network'> } {
  const sandbox = string(body.Container, 'Container');
  if (sandbox === undefined) throw badRequest('Container is required');
  const ec = object(body.EndpointConfig, 'EndpointConfig') ?? {};
  const ipam = object(ec.IPAMConfig, 'EndpointConfig.IPAMConfig') ?? {};
  const attach = defined({
    ip: string(ipam.IPv4Address, 'EndpointConfig.IPAMConfig.IPv4Address'),
    ip6: string(ipam.IPv6Address, 'EndpointConfig.IPAMConfig.IPv6Address'),
    aliases: strings(ec.Aliases, 'EndpointConfig.Aliases'),
    // Docker 28's driver option for the interface's name inside the container.
    ifname: string(stringMap(ec.DriverOpts, 'EndpointConfig.DriverOpts')?.[IFNAME_OPT], `EndpointConfig.DriverOpts.${IFNAME_OPT}`),
  });
  if ((strings(ec.Links, 'EndpointConfig.Links') ?? []).length > 0) throw badRequest('EndpointConfig.Links: --link on connect is not supported (give links at sandbox create)');
  if (string(ec.MacAddress, 'EndpointConfig.MacAddress') !== undefined) throw badRequest('EndpointConfig.MacAddress: --mac-address is not supported');
  const others = Object.keys(stringMap(ec.DriverOpts, 'EndpointConfig.DriverOpts') ?? {}).filter((k) => k !== IFNAME_OPT);
  if (others.length > 0) throw badRequest(`EndpointConfig.DriverOpts: --driver-opt ${others[0]} is not supported (only ${IFNAME_OPT})`);
  return { sandbox, attach };
}

/** `POST /networks/{id}/disconnect` body → the sandbox. */
export function parseDisconnect(body: Json): string {
  boolean(body.Force, 'Force');
  const sandbox = string(body.Container, 'Container');
  if (sandbox === undefined) throw badRequest('Container is required');
  return sandbox;
}

/** A sandbox as the API shows it (tsnet's own shape; `Env` is what `tsnet exec` sets). */
export function sandboxView(sb: SandboxRecord, env: Record<string, string>): Json {
  return {
    Id: sb.id,
    Name: sb.name,
    Created: sb.created,
    Hostname: sb.hostname,
    Mode: sb.mode,
    Netns: sb.netns === undefined ? null : `/run/netns/${sb.netns}`,
    NetnsName: sb.netns ?? null,
    Networks: Object.fromEntries(Object.entries(sb.attachments).map(([n, a]) => [n, { IPv4Address: a.ipv4 ?? '', IPv6Address: a.ipv6 ?? '', Aliases: a.aliases, Interface: a.ifname, HostInterface: a.hostIf, EndpointID: a.endpointId }])),
    Aliases: sb.aliases,
    Dns: sb.dns,
    DnsSearch: sb.dnsSearch,
    DnsOptions: sb.dnsOptions,
    Links: sb.links.map((l) => `${l.name}:${l.alias}`),
    Ports: (sb.ports ?? []).map((p) => ({ HostIp: p.hostIp, HostPort: p.hostPort, ContainerPort: p.port, Protocol: p.protocol })),
    Env: env,
  };
}

/** One entry of `networks` in `POST /sandboxes/create`. */
function attachRequest(v: unknown, path: string): AttachRequest {
  const n = record(v, path);
  const network = string(n.network, `${path}.network`);
  if (network === undefined) throw badRequest(`${path}.network is required`);
  return { network, ...defined({ ip: string(n.ip, `${path}.ip`), ip6: string(n.ip6, `${path}.ip6`), aliases: strings(n.aliases, `${path}.aliases`), ifname: string(n.ifname, `${path}.ifname`) }) };
}

/** `POST /sandboxes/create` body: tsnet's own field names, checked for type. */
export function parseSandboxCreate(body: Json): SandboxCreate {
  const req: SandboxCreate = { name: string(body.name, 'name') ?? '' };
  const networks = list(body.networks, 'networks', attachRequest);
  if (networks !== undefined) req.networks = networks;
  const hostname = string(body.hostname, 'hostname');
  if (hostname !== undefined) req.hostname = hostname;
  for (const k of ['aliases', 'dns', 'dnsSearch', 'dnsOptions', 'links', 'publish', 'expose'] as const) {
    const v = strings(body[k], k);
    if (v !== undefined) req[k] = v;
  }
  if (boolean(body.publishAll, 'publishAll') === true) req.publishAll = true;
  const netns = string(body.netns, 'netns');
  if (netns !== undefined) req.netns = netns;
  const pid = integer(body.pid, 'pid', 1, 2 ** 22);
  if (pid !== undefined) req.pid = pid;
  if (netns !== undefined && pid !== undefined) throw badRequest('netns and pid cannot be used together');
  return req;
}
