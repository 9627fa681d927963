import { isIPv4 } from 'node:net';

/** One published port: traffic to hostIp:hostPort goes to the sandbox's port. */
export interface PortMapping {
  /** `0.0.0.0` means every host address. */
  hostIp: string;
  /** 0 until allocated: then a free port from the host's ephemeral range. */
  hostPort: number;
  port: number;
  protocol: 'tcp' | 'udp';
  /** A service's port on an overlay: `host` publishes it only where a task runs, to that node's tasks (the mesh otherwise). */
  mode?: 'host';
}

const portNumber = (text: string, what: string, spec: string): number => {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new Error(`-p ${spec}: ${what} ${JSON.stringify(text)} is not a port from 1 to 65535`);
  return n;
};

/** Parses Docker's `-p [HOSTIP:][HOSTPORT:]PORT[/tcp|udp]` (HOSTPORT may be empty: any free one). */
export function parsePublish(spec: string): PortMapping {
  const [main = '', proto = 'tcp', ...extra] = spec.split('/');
  if (extra.length > 0 || (proto !== 'tcp' && proto !== 'udp')) throw new Error(`-p ${spec}: protocol must be tcp or udp`);
  const parts = main.split(':');
  if (parts.length > 3) throw new Error(`-p ${spec}: expected [HOSTIP:][HOSTPORT:]PORT`);
  const port = portNumber(parts.at(-1)!, 'container port', spec);
  const hostPortText = parts.length >= 2 ? parts.at(-2)! : '';
  const hostIp = parts.length === 3 ? parts[0]! : '0.0.0.0';
  if (!isIPv4(hostIp)) throw new Error(`-p ${spec}: host address ${JSON.stringify(hostIp)} is not an IPv4 address`);
  return { hostIp, hostPort: hostPortText === '' ? 0 : portNumber(hostPortText, 'host port', spec), port, protocol: proto };
}

/**
 * A service's `--publish`: Docker's short `[HOSTPORT:]PORT[/proto]`, or its long form
 * `mode=host|ingress,published=P,target=T[,protocol=tcp|udp]`.
 */
export function parseServicePublish(spec: string): PortMapping {
  if (!spec.includes('=')) return parsePublish(spec);
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const [k = '', v, ...rest] = part.split('=');
    if (v === undefined || rest.length > 0 || fields.has(k)) throw new Error(`--publish ${spec}: ${JSON.stringify(part)} is not one KEY=VALUE`);
    fields.set(k, v);
  }
  for (const k of fields.keys()) if (!['mode', 'published', 'target', 'protocol'].includes(k)) throw new Error(`--publish ${spec}: unknown field ${JSON.stringify(k)} (mode, published, target, protocol)`);
  const mode = fields.get('mode') ?? 'ingress';
  if (mode !== 'host' && mode !== 'ingress') throw new Error(`--publish ${spec}: mode ${JSON.stringify(mode)} is not host or ingress`);
  const protocol = fields.get('protocol') ?? 'tcp';
  if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`--publish ${spec}: protocol must be tcp or udp`);
  const target = fields.get('target');
  if (target === undefined) throw new Error(`--publish ${spec}: target is required`);
  const published = fields.get('published');
  return {
    hostIp: '0.0.0.0',
    hostPort: published === undefined ? 0 : portNumber(published, 'published port', spec),
    port: portNumber(target, 'target port', spec),
    protocol,
    ...(mode === 'host' ? { mode: 'host' as const } : {}),
  };
}

/** Docker's `--expose PORT[/proto]`, published to a free host port by `-P`. */
export function parseExpose(spec: string): PortMapping {
  const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  if (m === null) throw new Error(`--expose ${spec}: expected PORT[/tcp|udp]`);
  return { hostIp: '0.0.0.0', hostPort: 0, port: portNumber(m[1]!, 'port', spec), protocol: (m[2] ?? 'tcp') as 'tcp' | 'udp' };
}
