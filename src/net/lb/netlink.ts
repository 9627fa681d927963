/**
 * Netlink attribute (TLV) and generic-netlink message encoding, as in linux/netlink.h and
 * linux/genetlink.h: 16-byte nlmsghdr, 4-byte genlmsghdr, attributes padded to 4 bytes.
 */

export const NLA_F_NESTED = 0x8000;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLMSG_ERROR = 0x2;
export const NLMSG_DONE = 0x3;

const align = (n: number): number => (n + 3) & ~3;

/** One attribute: 2-byte length (header + value, unpadded), 2-byte type, value, zero padding. */
export function attr(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc(align(4 + value.length));
  out.writeUInt16LE(4 + value.length, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

export const nested = (type: number, attrs: readonly Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
export const u16 = (type: number, v: number): Buffer => attr(type, Buffer.from([v & 0xff, v >> 8]));
export const u32 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
};
/** A NUL-terminated string attribute. */
export const str = (type: number, v: string): Buffer => attr(type, Buffer.concat([Buffer.from(v, 'utf8'), Buffer.from([0])]));

/** A whole generic-netlink request: nlmsghdr + genlmsghdr(cmd, version) + attributes. */
export function genlMessage(o: { family: number; cmd: number; version: number; flags: number; seq: number; attrs: readonly Buffer[] }): Buffer {
  const body = Buffer.concat(o.attrs);
  const out = Buffer.alloc(16 + 4 + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(o.family, 4);
  out.writeUInt16LE(o.flags, 6);
  out.writeUInt32LE(o.seq, 8);
  out.writeUInt32LE(0, 12);
  out[16] = o.cmd;
  out[17] = o.version;
  body.copy(out, 20);
  return out;
}

/** Attributes of a buffer by type (nested flag masked off); the last of a type wins. */
export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let pos = 0;
  while (pos + 4 <= buf.length) {
    const len = buf.readUInt16LE(pos);
    if (len < 4 || pos + len > buf.length) break;
    out.set(buf.readUInt16LE(pos + 2) & ~NLA_F_NESTED, buf.subarray(pos + 4, pos + len));
    pos += align(len);
  }
  return out;
}

/** Splits a datagram of netlink messages into (type, flags, seq, payload after nlmsghdr). */
export function splitMessages(buf: Buffer): { type: number; flags: number; seq: number; payload: Buffer }[] {
  const out = [];
  let pos = 0;
  while (pos + 16 <= buf.length) {
    const len = buf.readUInt32LE(pos);
    if (len < 16 || pos + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(pos + 4), flags: buf.readUInt16LE(pos + 6), seq: buf.readUInt32LE(pos + 8), payload: buf.subarray(pos + 16, pos + len) });
    pos += align(len);
  }
  return out;
}
