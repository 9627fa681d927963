import { isIPv4 } from 'node:net';
import { toBigInt } from '../ipam/cidr.js';
import { attr, genlMessage, nested, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, parseAttrs, str, u16, u32 } from './netlink.js';

/**
 * The IPVS generic-netlink family (linux/ip_vs.h), spoken by tsnet itself: there is no npm
 * client. Encoding and decoding are pure; `ipvs-socket.ts` sends them.
 */
export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IpvsCmd = { NEW_SERVICE: 1, SET_SERVICE: 2, DEL_SERVICE: 3, GET_SERVICE: 4, NEW_DEST: 5, SET_DEST: 6, DEL_DEST: 7, GET_DEST: 8, FLUSH: 17 } as const;
const CmdAttr = { SERVICE: 1, DEST: 2 } as const;
const SvcAttr = { AF: 1, PROTOCOL: 2, ADDR: 3, PORT: 4, FWMARK: 5, SCHED_NAME: 6, FLAGS: 7, TIMEOUT: 8, NETMASK: 9 } as const;
const DestAttr = { ADDR: 1, PORT: 2, FWD_METHOD: 3, WEIGHT: 4, U_THRESH: 5, L_THRESH: 6, ACTIVE_CONNS: 7, INACT_CONNS: 8, ADDR_FAMILY: 11 } as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO = { tcp: 6, udp: 17 } as const;
/** IP_VS_CONN_F_* forwarding methods. */
export const FwdMethod = { masq: 0, local: 1, tunnel: 2, route: 3 } as const;

/** A virtual service: by address/protocol/port, or by firewall mark (as Docker marks from 256). */
export interface IpvsService {
  address?: string;
  protocol?: 'tcp' | 'udp';
  port?: number;
  fwmark?: number;
  family: 4 | 6;
  /** rr, wrr, lc, … */
  scheduler: string;
  /** Persistence timeout, seconds (0: none). */
  timeout?: number;
}

export interface IpvsDestination {
  address: string;
  port: number;
  /** 0 drains: no new connections, existing ones stay. */
  weight: number;
  fwdMethod?: keyof typeof FwdMethod;
  activeConns?: number;
  inactiveConns?: number;
}

/** union nf_inet_addr: 16 bytes, an IPv4 address in the first 4 (network order). */
function inetAddr(address: string): Buffer {
  const out = Buffer.alloc(16);
  const n = toBigInt(address);
  if (isIPv4(address)) out.writeUInt32BE(Number(n), 0);
  else for (let i = 0; i < 16; i++) out[i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  return out;
}

function addrText(buf: Buffer, family: number): string {
  if (family === AF_INET) return [...buf.subarray(0, 4)].join('.');
  const hex = buf.subarray(0, 16).toString('hex');
  return hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

const be16 = (type: number, v: number): Buffer => attr(type, Buffer.from([v >> 8, v & 0xff]));

/** The nested IPVS_CMD_ATTR_SERVICE attribute that identifies (and describes) a service. */
export function encodeService(s: IpvsService): Buffer {
  const af = s.family === 4 ? AF_INET : AF_INET6;
  const attrs = [u16(SvcAttr.AF, af)];
  if (s.fwmark !== undefined) attrs.push(u32(SvcAttr.FWMARK, s.fwmark));
  else attrs.push(u16(SvcAttr.PROTOCOL, IPPROTO[s.protocol!]), attr(SvcAttr.ADDR, inetAddr(s.address!)), be16(SvcAttr.PORT, s.port!));
  const flags = Buffer.alloc(8); // struct ip_vs_flags { __u32 flags; __u32 mask; }
  flags.writeUInt32LE(0xffffffff, 4);
  attrs.push(str(SvcAttr.SCHED_NAME, s.scheduler), attr(SvcAttr.FLAGS, flags), u32(SvcAttr.TIMEOUT, s.timeout ?? 0), u32(SvcAttr.NETMASK, s.family === 4 ? 0xffffffff : 128));
  return nested(CmdAttr.SERVICE, attrs);
}

export function encodeDestination(d: IpvsDestination, family: 4 | 6): Buffer {
  return nested(CmdAttr.DEST, [
    attr(DestAttr.ADDR, inetAddr(d.address)),
    be16(DestAttr.PORT, d.port),
    u32(DestAttr.FWD_METHOD, FwdMethod[d.fwdMethod ?? 'masq']),
    u32(DestAttr.WEIGHT, d.weight),
    u32(DestAttr.U_THRESH, 0),
    u32(DestAttr.L_THRESH, 0),
    u16(DestAttr.ADDR_FAMILY, family === 4 ? AF_INET : AF_INET6),
  ]);
}

/** A request for `cmd` on `service` (and `dest`), as a whole netlink message. */
export function ipvsRequest(o: { family: number; seq: number; cmd: number; service?: IpvsService; dest?: IpvsDestination; dump?: boolean }): Buffer {
  const attrs: Buffer[] = [];
  if (o.service !== undefined) attrs.push(encodeService(o.service));
  if (o.dest !== undefined) attrs.push(encodeDestination(o.dest, o.service?.family ?? 4));
  return genlMessage({ family: o.family, cmd: o.cmd, version: IPVS_GENL_VERSION, flags: NLM_F_REQUEST | (o.dump === true ? NLM_F_DUMP : NLM_F_ACK), seq: o.seq, attrs });
}

/** A service from the attributes of a GET_SERVICE reply (the payload after nlmsghdr). */
export function decodeService(payload: Buffer): IpvsService {
  const svc = parseAttrs(parseAttrs(payload.subarray(4)).get(CmdAttr.SERVICE) ?? Buffer.alloc(0));
  const af = svc.get(SvcAttr.AF)?.readUInt16LE(0) ?? AF_INET;
  const out: IpvsService = { family: af === AF_INET ? 4 : 6, scheduler: (svc.get(SvcAttr.SCHED_NAME)?.toString('utf8') ?? '').replace(/\0.*$/s, '') };
  const fwmark = svc.get(SvcAttr.FWMARK);
  if (fwmark !== undefined) out.fwmark = fwmark.readUInt32LE(0);
  const addr = svc.get(SvcAttr.ADDR);
  if (addr !== undefined) out.address = addrText(addr, af);
  const port = svc.get(SvcAttr.PORT);
  if (port !== undefined) out.port = port.readUInt16BE(0);
  const proto = svc.get(SvcAttr.PROTOCOL)?.readUInt16LE(0);
  if (proto !== undefined) out.protocol = proto === IPPROTO.udp ? 'udp' : 'tcp';
  const timeout = svc.get(SvcAttr.TIMEOUT);
  if (timeout !== undefined) out.timeout = timeout.readUInt32LE(0);
  return out;
}

/** A destination from the attributes of a GET_DEST reply. */
export function decodeDestination(payload: Buffer): IpvsDestination {
  const d = parseAttrs(parseAttrs(payload.subarray(4)).get(CmdAttr.DEST) ?? Buffer.alloc(0));
  const af = d.get(DestAttr.ADDR_FAMILY)?.readUInt16LE(0) ?? AF_INET;
  const method = d.get(DestAttr.FWD_METHOD)?.readUInt32LE(0) ?? 0;
  return {
    address: addrText(d.get(DestAttr.ADDR) ?? Buffer.alloc(16), af),
    port: d.get(DestAttr.PORT)?.readUInt16BE(0) ?? 0,
    weight: d.get(DestAttr.WEIGHT)?.readUInt32LE(0) ?? 0,
    fwdMethod: (Object.entries(FwdMethod).find(([, v]) => v === (method & 7))?.[0] ?? 'masq') as keyof typeof FwdMethod,
    activeConns: d.get(DestAttr.ACTIVE_CONNS)?.readUInt32LE(0) ?? 0,
    inactiveConns: d.get(DestAttr.INACT_CONNS)?.readUInt32LE(0) ?? 0,
  };
}
