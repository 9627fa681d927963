import dnsPacket from 'dns-packet';
import { EDNS_UDP_SIZE, Flag, PLAIN_UDP_SIZE, QType } from './constants.js';
import { layoutMessage, optRecord, pointOwnersAtQuestion } from './layout.js';
import type { Edns, Query } from './query.js';

/** The records of a reply, in dns-packet's shapes; the header and question come from the query. */
export interface ReplyBody {
  rcode: number;
  authoritative: boolean;
  answers?: dnsPacket.Answer[];
  authorities?: dnsPacket.Answer[];
  additionals?: dnsPacket.Answer[];
}

/** Our OPT record: our UDP size, the high bits of an extended rcode, DO copied (RFC 3225). */
export function optBytes(edns: Pick<Edns, 'dnssecOk'>, rcode: number): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(QType.OPT, 1);
  opt.writeUInt16BE(EDNS_UDP_SIZE, 3);
  opt[5] = rcode >> 4;
  opt.writeUInt16BE(edns.dnssecOk ? 0x8000 : 0, 7);
  return opt;
}

function replyFlags(queryFlags: number, rcode: number, authoritative: boolean): number {
  return (
    Flag.QR |
    (queryFlags & (0x7800 | Flag.RD | Flag.CD)) | // opcode, RD and CD are echoed (RFC 6840 5.9)
    (authoritative ? Flag.AA : 0) |
    Flag.RA |
    (rcode & 0xf)
  );
}

/**
 * A reply with no records: FORMERR, NOTIMP, BADVERS, SERVFAIL, REFUSED. Echoes the question
 * when one was read and adds an OPT when the query had one.
 */
export function emptyReply(raw: Buffer, rcode: number, questionEnd: number, edns: Edns | null): Buffer {
  const qlen = questionEnd > 12 ? questionEnd - 12 : 0;
  const opt = edns === null ? null : optBytes(edns, rcode);
  const out = Buffer.alloc(12 + qlen + (opt?.length ?? 0));
  raw.copy(out, 0, 0, 2);
  out.writeUInt16BE(replyFlags(raw.readUInt16BE(2), rcode, false), 2);
  out.writeUInt16BE(qlen > 0 ? 1 : 0, 4);
  out.writeUInt16BE(opt === null ? 0 : 1, 10);
  if (qlen > 0) raw.copy(out, 12, 12, questionEnd);
  if (opt !== null) opt.copy(out, 12 + qlen);
  return out;
}

/** Encodes a reply to `q` with dns-packet (the slow path; the result is what the fast path stores). */
export function encodeReply(q: Query, body: ReplyBody): Buffer {
  const additionals = body.additionals ?? [];
  const packet: dnsPacket.Packet = {
    id: q.id,
    type: 'response',
    flags: replyFlags(q.flags, body.rcode, body.authoritative),
    // Only the length matters here: the question bytes are overwritten from the query below.
    questions: [{ name: q.name, type: `UNKNOWN_${q.type}` as dnsPacket.RecordType, class: 'IN' }],
    answers: body.answers ?? [],
    authorities: body.authorities ?? [],
    additionals,
  };
  const encoded = dnsPacket.encode(packet);
  if (encoded.readUInt16BE(4) !== 1 || wireLength(q.name) + 16 !== q.questionEnd) {
    throw new Error(`wire: question ${JSON.stringify(q.name)} does not re-encode to the query's bytes`);
  }
  const compact = pointOwnersAtQuestion(encoded, q.questionEnd);
  const withOpt = q.edns === null ? compact : appendRecord(compact, optBytes(q.edns, body.rcode));
  // The question is copied from the query so its case (0x20 randomisation) and class survive,
  // and every owner that points at it echoes that case too.
  q.raw.copy(withOpt, 12, 12, q.questionEnd);
  return withOpt;
}

/** Encoded length of an escape-free name: each label plus its length byte, then the root. */
const wireLength = (name: string): number => (name === '' ? 1 : name.length + 2);

/** Appends one record to the additional section. */
export function appendRecord(message: Buffer, record: Buffer): Buffer {
  const out = Buffer.concat([message, record]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}

/** The largest UDP reply a query allows. */
export const udpLimit = (edns: Edns | null): number =>
  edns === null ? PLAIN_UDP_SIZE : Math.min(Math.max(edns.udpSize, PLAIN_UDP_SIZE), EDNS_UDP_SIZE);

/**
 * Cuts a reply that does not fit `limit` down to what fits, with TC set and the OPT record
 * kept (RFC 6891 7). Over UDP (`keep` 'none') only header and question stay: the client asks
 * again over TCP. Over TCP there is nowhere to go, so `keep` 'answers' keeps as many whole
 * answer records as fit the 65535-byte frame (authority and additionals go first).
 */
export function truncate(reply: Buffer, limit: number, keep: 'none' | 'answers' = 'none'): Buffer {
  if (reply.length <= limit) return reply;
  const layout = layoutMessage(reply);
  const questionEnd = layout?.questionEnd ?? 12;
  const opt = layout === null ? undefined : optRecord(layout);
  const optLen = opt === undefined ? 0 : opt.end - opt.start;
  let answersEnd = questionEnd;
  let answers = 0;
  if (keep === 'answers' && layout !== null) {
    for (const r of layout.records) {
      if (r.section !== 0 || r.end + optLen > limit) break;
      answersEnd = r.end;
      answers++;
    }
  }
  const out = Buffer.alloc(answersEnd + optLen);
  reply.copy(out, 0, 0, answersEnd);
  out.writeUInt16BE(out.readUInt16BE(2) | Flag.TC, 2);
  out.writeUInt16BE(layout === null ? 0 : 1, 4);
  out.writeUInt16BE(answers, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(opt === undefined ? 0 : 1, 10);
  if (opt !== undefined) reply.copy(out, answersEnd, opt.start, opt.end);
  return out;
}

/** The largest DNS message a TCP frame holds (RFC 1035 4.2.2: a 16-bit length). */
export const TCP_MESSAGE_LIMIT = 65_535;

/**
 * A copy of a stored or relayed reply made into the reply to `q`: its ID, its RD and CD bits and
 * its question bytes (so the asker's 0x20 letter case comes back as sent, in the question and in
 * every owner name that points at it); `extra` bytes are left at the end for a record to follow.
 * A template kept as a latin1 string (a stored answer) is written as its bytes.
 */
export function replyFor(q: Query, template: Buffer | string, extra = 0): Buffer {
  const out = Buffer.allocUnsafe(template.length + extra);
  if (typeof template === 'string') out.write(template, 0, 'latin1');
  else template.copy(out);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE((out.readUInt16BE(2) & ~(Flag.RD | Flag.CD)) | (q.flags & (Flag.RD | Flag.CD)), 2);
  if (template.length >= q.questionEnd) q.raw.copy(out, 12, 12, q.questionEnd);
  return out;
}

/** An upstream reply as tsnet keeps it: scrubbed, no OPT record, the full 12-bit rcode beside it. */
export interface Relayable {
  bytes: Buffer;
  rcode: number;
}

/**
 * A kept upstream reply made into the reply to `q` in one allocation: its ID, RD, CD and
 * question case, each TTL at `ttlOffsets` lowered by `age` seconds (a cached reply), and
 * tsnet's OPT when `q` had one. Its bytes may be a latin1 string (as the batched path's worker keeps them).
 */
export function relayTo(q: Query, kept: Relayable | { bytes: string; rcode: number }, age = 0, ttlOffsets: readonly number[] = []): Buffer {
  const out = replyFor(q, kept.bytes, q.edns === null ? 0 : 11);
  if (age > 0) for (const off of ttlOffsets) out.writeUInt32BE(Math.max(0, out.readUInt32BE(off) - age), off);
  if (q.edns !== null) {
    optBytes(q.edns, kept.rcode).copy(out, kept.bytes.length);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  return out;
}
