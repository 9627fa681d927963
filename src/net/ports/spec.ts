import { isIPv4 } from 'node:net';

/** One published port: traffic to hostIp:hostPort goes to the sandbox's port. */
export interface PortMapping {
  /** `0.0.0.0` means every host address. */
  hostIp: string;
  /** 0 until allocated: then a free port from the host's ephemeral range. */
  hostPort: number;
  port: number;
  protocol: 'tcp' | 'udp';
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

/** Docker's `--expose PORT[/proto]`, published to a free host port by `-P`. */
export function parseExpose(spec: string): PortMapping {
  const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  if (m === null) throw new Error(`--expose ${spec}: expected PORT[/tcp|udp]`);
  return { hostIp: '0.0.0.0', hostPort: 0, port: portNumber(m[1]!, 'port', spec), protocol: (m[2] ?? 'tcp') as 'tcp' | 'udp' };
}
