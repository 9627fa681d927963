import { isIP } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointAttachment } from '../registry/types.js';
import { parseUpstream } from '../server/upstreams.js';

/**
 * netavark's aardvark-dns config directory: one file per DNS-enabled network (named after it,
 * `NAME%int` for an internal one), beside `aardvark.pid`. Line 1 is `BINDIPS[ NETDNS]`; each
 * further line one container on that network: `ID V4S V6S NAMES[ CTRDNS]`, comma lists, an empty
 * field where there is none (two spaces). See ../shared/reference/aardvark-compat.md §1.
 */

export const PID_FILE = 'aardvark.pid';
const INTERNAL = '%int';

export interface AardvarkContainer {
  /** 64 hex digits, lowercased. */
  id: string;
  ipv4: string[];
  ipv6: string[];
  /** The container's name first, then its aliases on this network (podman adds the short id). */
  names: string[];
  /** The container's own --dns servers (podman ≥ 4.4). */
  dns: string[];
}

export interface AardvarkNetwork {
  name: string;
  internal: boolean;
  /** The network's gateway addresses: where its resolver listens. */
  bindIps: string[];
  /** Servers for names that are not the network's (`podman network create --dns`). */
  dns: string[];
  containers: AardvarkContainer[];
}

export class AardvarkConfigError extends Error {}

const list = (field: string | undefined): string[] => (field === undefined || field === '' ? [] : field.split(','));

function addresses(field: string | undefined, family: 4 | 6 | 0, what: string): string[] {
  const out = list(field);
  const bad = out.find((a) => (family === 0 ? isIP(a) === 0 : isIP(a) !== family));
  if (bad !== undefined) throw new AardvarkConfigError(`${what}: ${JSON.stringify(bad)} is not an IPv${family === 0 ? '4 or IPv6' : family} address`);
  return out;
}

/** DNS servers: netavark writes addresses (port 53); `IP:PORT` / `[IPv6]:PORT` as tsnet's --upstream takes them are accepted too. */
function servers(field: string | undefined, what: string): string[] {
  const out = list(field);
  for (const s of out) {
    try {
      parseUpstream(s);
    } catch {
      throw new AardvarkConfigError(`${what}: ${JSON.stringify(s)} is not a DNS server address`);
    }
  }
  return out;
}

/** One network file's text; throws naming the line that is wrong. */
export function parseNetworkFile(fileName: string, text: string): AardvarkNetwork {
  const internal = fileName.endsWith(INTERNAL);
  const name = internal ? fileName.slice(0, -INTERNAL.length) : fileName;
  const lines = text.split('\n').filter((l) => l !== '');
  const [head, ...rest] = lines;
  if (head === undefined) throw new AardvarkConfigError(`${fileName}: empty (line 1 must list the bind addresses)`);
  const [ips, netDns] = head.split(' ');
  const bindIps = addresses(ips, 0, `${fileName} line 1`);
  if (bindIps.length === 0) throw new AardvarkConfigError(`${fileName} line 1: no bind address`);
  const containers = rest.map((line, i): AardvarkContainer => {
    const where = `${fileName} line ${i + 2}`;
    const f = line.split(' ');
    if (f.length < 4) throw new AardvarkConfigError(`${where}: ${f.length} fields, want ID V4S V6S NAMES[ DNS]`);
    const id = f[0]!.toLowerCase();
    if (!/^[0-9a-f]{12,64}$/.test(id)) throw new AardvarkConfigError(`${where}: ${JSON.stringify(f[0])} is not a container id`);
    const names = list(f[3]).map((n) => n.toLowerCase());
    if (names.length === 0) throw new AardvarkConfigError(`${where}: no name`);
    return { id, ipv4: addresses(f[1], 4, where), ipv6: addresses(f[2], 6, where), names, dns: f.length === 5 ? servers(f[4], where) : [] };
  });
  // An internal network forwards nothing, so its DNS columns mean nothing (as aardvark ≥ 1.11 reads them).
  return { name, internal, bindIps, dns: internal ? [] : servers(netDns, `${fileName} line 1`), containers: internal ? containers.map((c) => ({ ...c, dns: [] })) : containers };
}

/**
 * Every network file in `dir`. A file that does not parse is reported and left out, so the rest
 * keep serving (aardvark ≥ 1.5); one removed while the directory is read is simply gone.
 */
export function readConfigDir(dir: string): { networks: AardvarkNetwork[]; errors: string[] } {
  const networks: AardvarkNetwork[] = [];
  const errors: string[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (file === PID_FILE || file.startsWith('.')) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') continue;
      throw err;
    }
    try {
      networks.push(parseNetworkFile(file, text));
    } catch (err) {
      if (!(err instanceof AardvarkConfigError)) throw err;
      errors.push(err.message);
    }
  }
  return { networks, errors };
}

/**
 * The networks as a records document for the registry: one endpoint per container (its lines on
 * every network merged by id), named by its first name, its other names aliases on each network;
 * its first address of each family first, the others (one per further subnet) secondary.
 */
export function toRecords(networks: readonly AardvarkNetwork[]): { networks: { name: string }[]; endpoints: unknown[] } {
  const endpoints = new Map<string, { id: string; name: string; networks: Record<string, EndpointAttachment> }>();
  for (const net of networks) {
    for (const c of net.containers) {
      const ep = endpoints.get(c.id) ?? { id: c.id, name: c.names[0]!, networks: {} };
      endpoints.set(c.id, ep);
      ep.networks[net.name] = {
        ...(c.ipv4[0] === undefined ? {} : { ipv4: c.ipv4[0] }),
        ...(c.ipv6[0] === undefined ? {} : { ipv6: c.ipv6[0] }),
        ...(c.ipv4.length > 1 || c.ipv6.length > 1 ? { secondary: [...c.ipv4.slice(1), ...c.ipv6.slice(1)] } : {}),
        aliases: c.names.filter((n) => n !== ep.name),
      };
    }
  }
  return { networks: networks.map((n) => ({ name: n.name })), endpoints: [...endpoints.values()] };
}

/**
 * Where each container's names that are not the networks' go, by its addresses: its own servers
 * (the fifth column), else those of every network it is on, in file order; a container with
 * neither is absent (the listener's: the host's resolvers).
 */
export function askerServers(networks: readonly AardvarkNetwork[]): Map<string, string[]> {
  const byId = new Map<string, { own: string[]; nets: string[]; addresses: string[] }>();
  for (const net of networks) {
    for (const c of net.containers) {
      const e = byId.get(c.id) ?? { own: [], nets: [], addresses: [] };
      byId.set(c.id, e);
      e.own.push(...c.dns.filter((s) => !e.own.includes(s)));
      e.nets.push(...net.dns.filter((s) => !e.nets.includes(s)));
      e.addresses.push(...c.ipv4, ...c.ipv6);
    }
  }
  const out = new Map<string, string[]>();
  for (const e of byId.values()) {
    const servers = e.own.length > 0 ? e.own : e.nets;
    if (servers.length > 0) for (const a of e.addresses) out.set(a, servers);
  }
  return out;
}
