import { isIP } from 'node:net';
import { DEFAULT_SOCKET } from '../control/client.js';
import { integer, list, object, record, string, strings, type Json } from '../control/fields.js';
import { ApiError } from '../daemon/errors.js';
import { domainName, ipAddress, name as validName, NAME, RecordsError, resolvOption, show } from '../registry/validate.js';
import { Code, CniError } from './errors.js';
import type { CniInterface, CniIp, CniResult, CniRoute } from './types.js';

/** The spec versions whose configuration and result tsnet-cni speaks; CHECK came with 0.4.0. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/** A network configuration as tsnet-cni works with it: what to ask the daemon for, every value checked. */
export interface NetConf {
  cniVersion: string;
  /** The CNI network's name (the runtime's handle for it). */
  name: string;
  /** The tsnet network containers join: `network`, or `name` when it is not given. */
  network: string;
  socket: string;
  /** Network-scoped aliases: the config's own `aliases` and the runtime's (`runtimeConfig.aliases[name]`). */
  aliases: string[];
  /** Where 127.0.0.11 forwards what no tsnet name answers: `dns.nameservers` and `runtimeConfig.dns.servers`. */
  upstreams: string[];
  search: string[];
  options: string[];
  domain?: string;
  /** A static address the runtime asks for (`runtimeConfig.ips`, without its prefix). */
  ip?: string;
  ip6?: string;
  /** The previous plugin's result (ADD in a chain) or this plugin's from ADD (CHECK, DEL). */
  prevResult?: CniResult;
}

/** Runs a read whose validators throw the control API's 400s or the records' errors: as code 7. */
function inConfig<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ApiError || err instanceof RecordsError) throw new CniError(Code.invalidConfig, `network configuration: ${err.message}`);
    throw err;
  }
}

/** The JSON on stdin, an object (code 6 otherwise). */
export function decode(text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(Code.decode, `network configuration on stdin is not JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CniError(Code.decode, 'network configuration on stdin is not a JSON object');
  return value as Json;
}

/** The config's cniVersion, one tsnet-cni speaks (code 1 otherwise); `command` CHECK needs 0.4.0 or later. */
export function checkVersion(conf: Json, command: string): string {
  const version = inConfig(() => string(conf.cniVersion, 'cniVersion'));
  if (version === undefined) throw new CniError(Code.invalidConfig, 'network configuration: cniVersion is required');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(Code.incompatibleVersion, `cniVersion ${show(version)} is not one tsnet-cni supports`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (command === 'CHECK' && version.startsWith('0.3.')) throw new CniError(Code.incompatibleVersion, `CHECK is not in cniVersion ${version} (it came with 0.4.0)`);
  return version;
}

const ifaceOf = (v: unknown, path: string): CniInterface => {
  const o = record(v, path);
  const name = string(o.name, `${path}.name`) ?? '';
  const mac = string(o.mac, `${path}.mac`);
  const sandbox = string(o.sandbox, `${path}.sandbox`);
  return { name, ...(mac === undefined ? {} : { mac }), ...(sandbox === undefined ? {} : { sandbox }) };
};

const ipOf = (v: unknown, path: string): CniIp => {
  const o = record(v, path);
  const address = string(o.address, `${path}.address`) ?? '';
  const gateway = string(o.gateway, `${path}.gateway`);
  const index = integer(o.interface, `${path}.interface`, 0, 1024);
  return { address, ...(gateway === undefined ? {} : { gateway }), ...(index === undefined ? {} : { interface: index }) };
};

const routeOf = (v: unknown, path: string): CniRoute => {
  const o = record(v, path);
  const gw = string(o.gw, `${path}.gw`);
  return { dst: string(o.dst, `${path}.dst`) ?? '', ...(gw === undefined ? {} : { gw }) };
};

/** A result as prevResult carries it: the fields tsnet-cni reads or passes on, type-checked. */
function prevResultOf(v: Json, cniVersion: string): CniResult {
  const dns = object(v.dns, 'prevResult.dns');
  return {
    cniVersion,
    interfaces: list(v.interfaces, 'prevResult.interfaces', ifaceOf) ?? [],
    ips: list(v.ips, 'prevResult.ips', ipOf) ?? [],
    routes: list(v.routes, 'prevResult.routes', routeOf) ?? [],
    ...(dns === undefined ? {} : { dns: { nameservers: strings(dns.nameservers, 'prevResult.dns.nameservers') ?? [], search: strings(dns.search, 'prevResult.dns.search') ?? [], options: strings(dns.options, 'prevResult.dns.options') ?? [] } }),
  };
}

/** A list of strings at `path`, each passing `check` (which names `path[i]` when it does not). */
const each = (v: unknown, path: string, check: (v: unknown, path: string) => string): string[] => (strings(v, path) ?? []).map((x, i) => check(x, `${path}[${i}]`));

/** `runtimeConfig.ips` (`10.1.2.3/24`): at most one address of each family, its prefix dropped (the network has one). */
function staticIps(ips: string[] | undefined): { ip?: string; ip6?: string } {
  const out: { ip?: string; ip6?: string } = {};
  for (const [i, cidr] of (ips ?? []).entries()) {
    const addr = cidr.split('/')[0]!;
    const family = isIP(addr);
    if (family === 0) throw new CniError(Code.invalidConfig, `network configuration: runtimeConfig.ips[${i}]: ${show(cidr)} is not an address`);
    const key = family === 4 ? 'ip' : 'ip6';
    if (out[key] !== undefined) throw new CniError(Code.invalidConfig, `network configuration: runtimeConfig.ips: more than one IPv${family} address`);
    out[key] = addr;
  }
  return out;
}

/**
 * The configuration ADD, DEL and CHECK run with. Unknown fields are left alone (runtimes add
 * their own); `ipam` is refused with code 2, since addresses come from the tsnet network.
 */
export function parseConfig(conf: Json, command: string): NetConf {
  const cniVersion = checkVersion(conf, command);
  return inConfig(() => {
    const name = string(conf.name, 'name');
    if (name === undefined) throw new CniError(Code.invalidConfig, 'network configuration: name is required');
    if (!NAME.test(name)) throw new CniError(Code.invalidConfig, `network configuration: name ${show(name)} is not a network name (letters, digits, '_', '.', '-'; up to 63)`);
    if (string(conf.type, 'type') === undefined) throw new CniError(Code.invalidConfig, 'network configuration: type is required');
    if (conf.ipam !== undefined) throw new CniError(Code.unsupportedField, 'network configuration: ipam is not supported: tsnet-cni takes addresses from the tsnet network\'s own IPAM');
    const socket = string(conf.socket, 'socket') ?? DEFAULT_SOCKET;
    if (!socket.startsWith('/')) throw new CniError(Code.invalidConfig, `network configuration: socket ${show(socket)} is not an absolute path`);
    const dns = object(conf.dns, 'dns') ?? {};
    const rc = object(conf.runtimeConfig, 'runtimeConfig') ?? {};
    const rcDns = object(rc.dns, 'runtimeConfig.dns') ?? {};
    const aliases = [...each(conf.aliases, 'aliases', validName), ...each((object(rc.aliases, 'runtimeConfig.aliases') ?? {})[name], `runtimeConfig.aliases.${name}`, validName)];
    const domain = string(dns.domain, 'dns.domain');
    const prev = object(conf.prevResult, 'prevResult');
    return {
      cniVersion,
      name,
      network: string(conf.network, 'network') ?? name,
      socket,
      aliases: [...new Set(aliases)],
      upstreams: [...each(dns.nameservers, 'dns.nameservers', ipAddress), ...each(rcDns.servers, 'runtimeConfig.dns.servers', ipAddress)],
      search: [...each(dns.search, 'dns.search', domainName), ...each(rcDns.searches, 'runtimeConfig.dns.searches', domainName)],
      options: [...each(dns.options, 'dns.options', resolvOption), ...each(rcDns.options, 'runtimeConfig.dns.options', resolvOption)],
      ...(domain === undefined ? {} : { domain: domainName(domain, 'dns.domain') }),
      ...staticIps(strings(rc.ips, 'runtimeConfig.ips')),
      ...(prev === undefined ? {} : { prevResult: prevResultOf(prev, cniVersion) }),
    };
  });
}
