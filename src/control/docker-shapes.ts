import type { AttachRequest, NetworkCreate, SandboxCreate } from '../daemon/requests.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from '../daemon/state.js';
import { badRequest } from '../daemon/errors.js';

type Json = Record<string, unknown>;

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
      MacAddress: '',
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
    Scope: 'local',
    Driver: net.driver,
    EnableIPv6: net.ipam?.subnet6 !== undefined,
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: net.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: { ...net.options, ...(net.device === undefined ? {} : { 'com.docker.network.bridge.name': net.device }) },
    Labels: net.labels,
  };
}

const str = (v: unknown, what: string): string | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw badRequest(`${what}: ${JSON.stringify(v)} is not a string`);
  return v;
};

const strMap = (v: unknown, what: string): Record<string, string> | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw badRequest(`${what}: expected an object of strings`);
  return v as Record<string, string>;
};

/** `POST /networks/create` body → a NetworkCreate (Docker's field names). */
export function parseNetworkCreate(body: Json): NetworkCreate {
  const ipam = (body.IPAM ?? {}) as Json;
  const configs = Array.isArray(ipam.Config) ? (ipam.Config as Json[]) : [];
  const v4 = configs.find((c) => !String(c.Subnet ?? '').includes(':'));
  const v6 = configs.find((c) => String(c.Subnet ?? '').includes(':'));
  const req: NetworkCreate = { name: str(body.Name, 'Name') ?? '' };
  const set = <K extends keyof NetworkCreate>(k: K, v: NetworkCreate[K] | undefined): void => {
    if (v !== undefined) req[k] = v;
  };
  set('driver', str(body.Driver, 'Driver'));
  set('subnet', str(v4?.Subnet, 'IPAM.Config.Subnet'));
  set('gateway', str(v4?.Gateway, 'IPAM.Config.Gateway'));
  set('ipRange', str(v4?.IPRange, 'IPAM.Config.IPRange'));
  set('subnet6', str(v6?.Subnet, 'IPAM.Config.Subnet'));
  set('gateway6', str(v6?.Gateway, 'IPAM.Config.Gateway'));
  set('internal', body.Internal === true ? true : undefined);
  set('labels', strMap(body.Labels, 'Labels'));
  set('options', strMap(body.Options, 'Options'));
  return req;
}

/** `POST /networks/{id}/connect` body → (sandbox, attach request). */
export function parseConnect(body: Json): { sandbox: string; attach: Omit<AttachRequest, 'network'> } {
  const sandbox = str(body.Container, 'Container');
  if (sandbox === undefined) throw badRequest('Container is required');
  const ec = (body.EndpointConfig ?? {}) as Json;
  const ipam = (ec.IPAMConfig ?? {}) as Json;
  const attach: Omit<AttachRequest, 'network'> = {};
  const ip = str(ipam.IPv4Address, 'IPv4Address');
  const ip6 = str(ipam.IPv6Address, 'IPv6Address');
  if (ip !== undefined) attach.ip = ip;
  if (ip6 !== undefined) attach.ip6 = ip6;
  if (Array.isArray(ec.Aliases)) attach.aliases = ec.Aliases.map((a, i) => str(a, `Aliases[${i}]`)!);
  return { sandbox, attach };
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

/** `POST /sandboxes/create` body: tsnet's own field names, checked for type. */
export function parseSandboxCreate(body: Json): SandboxCreate {
  const list = (v: unknown, what: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw badRequest(`${what}: expected a list of strings`);
    return v as string[];
  };
  const networks = body.networks === undefined ? undefined : (body.networks as Json[]).map((n, i) => {
    const a: AttachRequest = { network: str(n.network, `networks[${i}].network`) ?? '' };
    const ip = str(n.ip, `networks[${i}].ip`);
    const ip6 = str(n.ip6, `networks[${i}].ip6`);
    const aliases = list(n.aliases, `networks[${i}].aliases`);
    if (ip !== undefined) a.ip = ip;
    if (ip6 !== undefined) a.ip6 = ip6;
    if (aliases !== undefined) a.aliases = aliases;
    return a;
  });
  const req: SandboxCreate = { name: str(body.name, 'name') ?? '' };
  if (networks !== undefined) req.networks = networks;
  const hostname = str(body.hostname, 'hostname');
  if (hostname !== undefined) req.hostname = hostname;
  for (const k of ['aliases', 'dns', 'dnsSearch', 'dnsOptions', 'links', 'publish', 'expose'] as const) {
    const v = list(body[k], k);
    if (v !== undefined) req[k] = v;
  }
  if (body.publishAll === true) req.publishAll = true;
  const netns = str(body.netns, 'netns');
  if (netns !== undefined) req.netns = netns;
  if (body.pid !== undefined) {
    if (typeof body.pid !== 'number' || !Number.isInteger(body.pid) || body.pid < 1) throw badRequest(`pid: ${JSON.stringify(body.pid)} is not a process id`);
    req.pid = body.pid;
  }
  return req;
}
