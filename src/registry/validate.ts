import { isIP, isIPv4, isIPv6 } from 'node:net';
import { inCidr } from './address.js';
import type {
  EndpointAttachment,
  EndpointSpec,
  NetworkSpec,
  RecordsState,
  ServicePort,
  ServiceSpec,
  TaskSpec,
} from './types.js';

/** A records document was refused; `path` names the field, as in `endpoints[3].networks.app.ipv4`. */
export class RecordsError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'RecordsError';
  }
}

type Obj = Record<string, unknown>;

/** A value as an error shows it: JSON, cut short so that a huge value is never echoed whole. */
export const show = (v: unknown): string => {
  const text = typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};
/** Names of networks, endpoints, aliases, hostnames and services. */
export const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const HEX_ID = /^[0-9a-fA-F]{12,64}$/;
/** Runtimes' own task ids: Swarm's are 25 lowercase base-36 characters, others hex. */
const TASK_ID = /^[0-9a-z]{1,64}$/;
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
/** resolv.conf `options` words: `ndots:2`, `rotate`, `single-request-reopen`. */
const RESOLV_OPTION = /^[a-z][a-z0-9_-]{0,31}(?::\d{1,4})?$/;

function object(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RecordsError(path, `${show(v)} is not an object`);
  return v as Obj;
}

function array(v: unknown, path: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new RecordsError(path, `${show(v)} is not an array`);
  return v;
}

export function name(v: unknown, path: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    throw new RecordsError(path, `${show(v)} is not a valid name (letters, digits, '_', '.', '-'; up to 63)`);
  }
  return v;
}

function optional<T>(v: unknown, path: string, check: (v: unknown, path: string) => T): T | undefined {
  return v === undefined || v === null ? undefined : check(v, path);
}

function ipv4(v: unknown, path: string): string {
  if (typeof v !== 'string' || !isIPv4(v)) throw new RecordsError(path, `${show(v)} is not an IPv4 address`);
  return v;
}

function ipv6(v: unknown, path: string): string {
  if (typeof v !== 'string' || !isIPv6(v)) throw new RecordsError(path, `${show(v)} is not an IPv6 address`);
  return v;
}

function subnet(v: unknown, path: string, family: 'ipv4' | 'ipv6'): string {
  const [addr, bits, ...rest] = typeof v === 'string' ? v.split('/') : [];
  const max = family === 'ipv4' ? 32 : 128;
  const ok = family === 'ipv4' ? isIPv4(addr ?? '') : isIPv6(addr ?? '');
  if (!ok || rest.length > 0 || !/^\d+$/.test(bits ?? '') || Number(bits) > max) {
    throw new RecordsError(path, `${show(v)} is not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} subnet in CIDR form`);
  }
  return v as string;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new RecordsError(path, `${show(v)} is not true or false`);
  return v;
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RecordsError(path, `${show(v)} is not an integer from ${min} to ${max}`);
  }
  return v;
}

function hexId(v: unknown, path: string): string {
  if (typeof v !== 'string' || !HEX_ID.test(v)) throw new RecordsError(path, `${show(v)} is not an id of 12 to 64 hex digits`);
  return v.toLowerCase();
}

function taskId(v: unknown, path: string): string {
  if (typeof v !== 'string' || !TASK_ID.test(v)) throw new RecordsError(path, `${show(v)} is not a task id (1 to 64 lowercase letters and digits)`);
  return v;
}

/** A DNS domain (a search domain): dot-separated labels of up to 63, 253 in all; one trailing dot allowed. */
export function domainName(v: unknown, path: string): string {
  const labels = typeof v === 'string' ? v.replace(/\.$/, '').split('.') : [];
  if (typeof v !== 'string' || v.length > 253 || !labels.every((l) => LABEL.test(l))) throw new RecordsError(path, `${show(v)} is not a domain name`);
  return v;
}

/** One resolv.conf option (`ndots:N`, `rotate`, …): a word and an optional number, nothing else. */
export function resolvOption(v: unknown, path: string): string {
  if (typeof v !== 'string' || !RESOLV_OPTION.test(v)) throw new RecordsError(path, `${show(v)} is not a resolv.conf option (like ndots:2 or rotate)`);
  return v;
}

/** An IPv4 or IPv6 address (a DNS server): no port, no zone. */
export function ipAddress(v: unknown, path: string): string {
  if (typeof v !== 'string' || isIP(v) === 0) throw new RecordsError(path, `${show(v)} is not an IP address`);
  return v;
}

/** Adds `key` to `seen`, refusing it if already there (by the size: one hash lookup, not two). */
function unique(seen: Set<string>, key: string, path: string, what: string): void {
  const before = seen.size;
  if (seen.add(key).size === before) throw new RecordsError(path, `${what} ${show(key)} appears twice`);
}

/** Checks `addr` falls inside the network's subnet of its family, when the network has one. */
function inSubnet(addr: string, net: NetworkSpec, family: 'ipv4' | 'ipv6', path: string): void {
  const cidr = family === 'ipv4' ? net.subnet : net.ipv6Subnet;
  if (cidr === undefined) return;
  if (!inCidr(cidr, addr, family)) throw new RecordsError(path, `${show(addr)} is outside ${net.name}'s subnet ${cidr}`);
}

/** The optional address `o[key]` of `family`, checked to lie in the network's subnet. */
function addressIn(o: Obj, key: string, path: string, net: NetworkSpec, family: 'ipv4' | 'ipv6'): string | undefined {
  const addr = optional(o[key], `${path}.${key}`, family === 'ipv4' ? ipv4 : ipv6);
  if (addr !== undefined) inSubnet(addr, net, family, `${path}.${key}`);
  return addr;
}

function network(v: unknown, path: string): NetworkSpec {
  const o = object(v, path);
  const net: NetworkSpec = { name: name(o.name, `${path}.name`) };
  const id = optional(o.id, `${path}.id`, hexId);
  if (id !== undefined) net.id = id;
  const sub = optional(o.subnet, `${path}.subnet`, (x, p) => subnet(x, p, 'ipv4'));
  if (sub !== undefined) net.subnet = sub;
  const sub6 = optional(o.ipv6Subnet, `${path}.ipv6Subnet`, (x, p) => subnet(x, p, 'ipv6'));
  if (sub6 !== undefined) net.ipv6Subnet = sub6;
  const gw = addressIn(o, 'gateway', path, net, 'ipv4');
  if (gw !== undefined) net.gateway = gw;
  const gw6 = addressIn(o, 'ipv6Gateway', path, net, 'ipv6');
  if (gw6 !== undefined) net.ipv6Gateway = gw6;
  const dns = optional(o.dns, `${path}.dns`, bool);
  if (dns !== undefined) net.dns = dns;
  return net;
}

/**
 * Whether a parsed object already is what validation built from it (same keys, same values, arrays
 * element by element): then the object itself can be kept and the copy dropped while young.
 */
function sameAs<T extends object>(o: Obj, built: T): boolean {
  const keys = Object.keys(built);
  if (Object.keys(o).length !== keys.length) return false;
  for (const k of keys) {
    const a = o[k];
    const b = (built as Obj)[k];
    if (a === b) continue;
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length || a.some((x, i) => x !== b[i])) return false;
  }
  return true;
}

function attachment(v: unknown, path: string, net: NetworkSpec, adopt: boolean): EndpointAttachment {
  const o = object(v, path);
  const att: EndpointAttachment = {};
  const v4 = addressIn(o, 'ipv4', path, net, 'ipv4');
  if (v4 !== undefined) att.ipv4 = v4;
  const v6 = addressIn(o, 'ipv6', path, net, 'ipv6');
  if (v6 !== undefined) att.ipv6 = v6;
  const aliases = array(o.aliases, `${path}.aliases`).map((a, i) => name(a, `${path}.aliases[${i}]`));
  if (aliases.length > 0) att.aliases = aliases;
  // Nearly every attachment has none: no array is made for them.
  const secondary = o.secondary === undefined ? undefined : array(o.secondary, `${path}.secondary`).map((a, i) => {
    const p = `${path}.secondary[${i}]`;
    const family = typeof a === 'string' && a.includes(':') ? 'ipv6' : 'ipv4';
    const addr = (family === 'ipv4' ? ipv4 : ipv6)(a, p);
    inSubnet(addr, net, family, p);
    return addr;
  });
  if (secondary !== undefined && secondary.length > 0) att.secondary = secondary;
  return adopt && sameAs(o, att) ? (o as EndpointAttachment) : att;
}

function endpoint(v: unknown, path: string, networks: Map<string, NetworkSpec>, adopt: boolean): EndpointSpec {
  const o = object(v, path);
  const ep: EndpointSpec = { id: hexId(o.id, `${path}.id`), name: name(o.name, `${path}.name`), networks: {} };
  const hostname = optional(o.hostname, `${path}.hostname`, name);
  if (hostname !== undefined) ep.hostname = hostname;
  for (const [netName, att] of Object.entries(object(o.networks ?? {}, `${path}.networks`))) {
    const net = networks.get(netName);
    if (net === undefined) throw new RecordsError(`${path}.networks`, `network ${show(netName)} is not defined`);
    ep.networks[netName] = attachment(att, `${path}.networks.${netName}`, net, adopt);
  }
  if (!adopt || typeof o.networks !== 'object' || !sameAs(o.networks as Obj, ep.networks)) return ep;
  const kept = { ...ep, networks: o.networks };
  return sameAs(o, kept) ? (o as unknown as EndpointSpec) : ep;
}

function port(v: unknown, path: string): ServicePort {
  const o = object(v, path);
  if (o.protocol !== 'tcp' && o.protocol !== 'udp') throw new RecordsError(`${path}.protocol`, `${show(o.protocol)} is not "tcp" or "udp"`);
  return { name: name(o.name, `${path}.name`), protocol: o.protocol, port: integer(o.port, `${path}.port`, 1, 65535) };
}

function task(v: unknown, path: string, net: NetworkSpec): TaskSpec {
  const o = object(v, path);
  const t: TaskSpec = { id: taskId(o.id, `${path}.id`) };
  const n = optional(o.name, `${path}.name`, name);
  if (n !== undefined) t.name = n;
  const v4 = addressIn(o, 'ipv4', path, net, 'ipv4');
  if (v4 !== undefined) t.ipv4 = v4;
  const v6 = addressIn(o, 'ipv6', path, net, 'ipv6');
  if (v6 !== undefined) t.ipv6 = v6;
  const healthy = optional(o.healthy, `${path}.healthy`, bool);
  if (healthy !== undefined) t.healthy = healthy;
  const draining = optional(o.draining, `${path}.draining`, bool);
  if (draining !== undefined) t.draining = draining;
  const weight = optional(o.weight, `${path}.weight`, (x, p) => integer(x, p, 0, 65535));
  if (weight !== undefined) t.weight = weight;
  return t;
}

function service(v: unknown, path: string, networks: Map<string, NetworkSpec>): ServiceSpec {
  const o = object(v, path);
  const svcName = name(o.name, `${path}.name`);
  const netName = name(o.network, `${path}.network`);
  const net = networks.get(netName);
  if (net === undefined) throw new RecordsError(`${path}.network`, `network ${show(netName)} is not defined`);
  const mode = o.mode ?? 'vip';
  if (mode !== 'vip' && mode !== 'dnsrr') throw new RecordsError(`${path}.mode`, `${show(mode)} is not "vip" or "dnsrr"`);
  const svc: ServiceSpec = { name: svcName, network: netName, mode, tasks: [] };
  const vip = optional(o.vip, `${path}.vip`, ipv4);
  if (vip !== undefined) svc.vip = vip;
  const vip6 = optional(o.vip6, `${path}.vip6`, ipv6);
  if (vip6 !== undefined) svc.vip6 = vip6;
  if (mode === 'vip' && vip === undefined && vip6 === undefined) {
    throw new RecordsError(`${path}.vip`, 'a service in "vip" mode needs a vip or vip6');
  }
  const ports = array(o.ports, `${path}.ports`).map((p, i) => port(p, `${path}.ports[${i}]`));
  if (ports.length > 0) svc.ports = ports;
  const ids = new Set<string>();
  svc.tasks = array(o.tasks, `${path}.tasks`).map((t, i) => {
    const parsed = task(t, `${path}.tasks[${i}]`, net);
    unique(ids, parsed.id, `${path}.tasks[${i}].id`, 'task id');
    return parsed;
  });
  return svc;
}

/**
 * Validates a records document (parsed JSON) into a RecordsState. Throws a RecordsError naming
 * the first bad field; nothing is half-accepted. With `adopt` the caller hands the document over
 * (just parsed, kept by no one): endpoints already in their validated form are kept as they are,
 * not copied, which at 100k endpoints is 40 MB less to copy into the old generation.
 */
export function parseRecords(doc: unknown, opts: { adopt?: boolean } = {}): RecordsState {
  const root = object(doc, '(root)');
  const networks = new Map<string, NetworkSpec>();
  array(root.networks, 'networks').forEach((n, i) => {
    const net = network(n, `networks[${i}]`);
    if (networks.has(net.name)) throw new RecordsError(`networks[${i}].name`, `network ${show(net.name)} appears twice`);
    networks.set(net.name, net);
  });
  const ids = new Set<string>();
  const addresses = new Map<string, Set<string>>();
  const endpoints = array(root.endpoints, 'endpoints').map((e, i) => {
    const ep = endpoint(e, `endpoints[${i}]`, networks, opts.adopt === true);
    unique(ids, ep.id, `endpoints[${i}].id`, 'endpoint id');
    for (const [net, att] of Object.entries(ep.networks)) {
      let onNet = addresses.get(net);
      if (onNet === undefined) addresses.set(net, (onNet = new Set()));
      if (att.ipv4 !== undefined) unique(onNet, att.ipv4, `endpoints[${i}].networks.${net}.ipv4`, `address on ${net}`);
      if (att.ipv6 !== undefined) unique(onNet, att.ipv6, `endpoints[${i}].networks.${net}.ipv6`, `address on ${net}`);
      att.secondary?.forEach((addr, k) => unique(onNet, addr, `endpoints[${i}].networks.${net}.secondary[${k}]`, `address on ${net}`));
    }
    return ep;
  });
  const serviceKeys = new Set<string>();
  const services = array(root.services, 'services').map((s, i) => {
    const svc = service(s, `services[${i}]`, networks);
    unique(serviceKeys, `${svc.name}.${svc.network}`, `services[${i}].name`, 'service');
    return svc;
  });
  return { networks: [...networks.values()], endpoints, services };
}
