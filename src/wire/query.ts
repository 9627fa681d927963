import { Flag, QType, Rcode } from './constants.js';
import { questionNameEnd, readName, skipName } from './name.js';

/** What the EDNS OPT record of a query asked for (RFC 6891). */
export interface Edns {
  udpSize: number;
  version: number;
  /** DNSSEC OK: copied into the reply's OPT as RFC 3225 asks. */
  dnssecOk: boolean;
  /** Length of the options in the OPT RDATA (cookies, ECS, padding). */
  optionsLength: number;
}

/** A parsed query: only what resolvers and the fast path need, read without dns-packet. */
export interface Query {
  id: number;
  /** The header flags word as received. */
  flags: number;
  /** Lowercased question name, no trailing dot, '' for the root (decoded on first use). */
  readonly name: string;
  /**
   * The question as its wire bytes, the name's ASCII letters folded to lower case and the type
   * and class bytes as sent: equal for questions DNS treats as equal, and cheap to make. Keys
   * the caches.
   */
  readonly key: string;
  type: number;
  qclass: number;
  /** Offset just past the question: bytes [12, questionEnd) are echoed verbatim in replies. */
  questionEnd: number;
  edns: Edns | null;
  raw: Buffer;
}

export type ParseResult =
  | { kind: 'query'; query: Query }
  /** Nothing may be sent back: too short to hold a header, or itself a response. */
  | { kind: 'drop' }
  /** The header parsed but the query cannot be served; `questionEnd` is 0 when no question could be read. */
  | { kind: 'error'; rcode: number; questionEnd: number; edns: Edns | null };

const HEADER = 12;

/**
 * Parses a query datagram. Never throws: every byte string maps to a query, an error reply
 * (FORMERR, NOTIMP, BADVERS) or a silent drop (RFC 1035 4.1.1, RFC 6891 7).
 */
export function parseQuery(raw: Buffer): ParseResult {
  if (raw.length < HEADER) return { kind: 'drop' };
  const flags = raw.readUInt16BE(2);
  if (flags & Flag.QR) return { kind: 'drop' };
  const qdcount = raw.readUInt16BE(4);
  const ancount = raw.readUInt16BE(6);
  const nscount = raw.readUInt16BE(8);
  const arcount = raw.readUInt16BE(10);

  let questionEnd = 0;
  let type = 0;
  let qclass = 0;
  if (qdcount === 1) {
    const nameEnd = questionNameEnd(raw, HEADER);
    if (nameEnd > 0 && nameEnd + 4 <= raw.length) {
      type = raw.readUInt16BE(nameEnd);
      qclass = raw.readUInt16BE(nameEnd + 2);
      questionEnd = nameEnd + 4;
    }
  }
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { kind: 'error', rcode: Rcode.NOTIMP, questionEnd, edns: null };
  if (qdcount !== 1 || questionEnd === 0 || ancount !== 0 || nscount !== 0) {
    return { kind: 'error', rcode: Rcode.FORMERR, questionEnd, edns: null };
  }

  const edns = readEdns(raw, questionEnd, arcount);
  if (edns === 'malformed') return { kind: 'error', rcode: Rcode.FORMERR, questionEnd, edns: null };
  if (edns !== null && edns.version !== 0) return { kind: 'error', rcode: Rcode.BADVERS, questionEnd, edns };
  if (type === QType.OPT) return { kind: 'error', rcode: Rcode.FORMERR, questionEnd, edns };

  return { kind: 'query', query: new ParsedQuery(raw, flags, type, qclass, questionEnd, edns) };
}

const NON_ASCII = /[\x80-\xff]/;

/**
 * The dotted name read from a question key (already case-folded), when every label is plain
 * printable ASCII without '.' or '\\'; undefined when it needs escapes (readName does those).
 */
function plainName(key: string): string | undefined {
  let name = '';
  let pos = 0;
  for (let len = key.charCodeAt(0); len !== 0; len = key.charCodeAt(pos)) {
    const label = key.slice(pos + 1, pos + 1 + len);
    if (!PLAIN_LABEL.test(label)) return undefined;
    name = pos === 0 ? label : name + '.' + label;
    pos += 1 + len;
  }
  return name;
}
const PLAIN_LABEL = /^[\x21-\x2d\x2f-\x5b\x5d-\x7e]+$/;

class ParsedQuery implements Query {
  readonly id: number;
  #name: string | undefined;
  #key: string | undefined;

  constructor(
    readonly raw: Buffer,
    readonly flags: number,
    readonly type: number,
    readonly qclass: number,
    readonly questionEnd: number,
    readonly edns: Edns | null,
  ) {
    this.id = raw.readUInt16BE(0);
  }

  get name(): string {
    return (this.#name ??= plainName(this.key) ?? readName(this.raw, HEADER, false)!.name);
  }

  get key(): string {
    if (this.#key === undefined) {
      const nameEnd = this.questionEnd - 4;
      const name = this.raw.toString('latin1', HEADER, nameEnd);
      // Label-length bytes are at most 63, never a letter; only ASCII letters fold (RFC 4343).
      // Type and class are numbers: folding their bytes would make TYPE97 ('a') equal TYPE65 ('A').
      const folded = NON_ASCII.test(name) ? name.replace(/[A-Z]/g, (c: string) => c.toLowerCase()) : name.toLowerCase();
      this.#key = folded + this.raw.toString('latin1', nameEnd, this.questionEnd);
    }
    return this.#key;
  }
}

/** Finds the one OPT record among the additionals; more than one is malformed (RFC 6891 6.1.1). */
function readEdns(raw: Buffer, offset: number, arcount: number): Edns | null | 'malformed' {
  let edns: Edns | null = null;
  let pos = offset;
  for (let i = 0; i < arcount; i++) {
    const nameEnd = skipName(raw, pos);
    if (nameEnd < 0 || nameEnd + 10 > raw.length) return 'malformed';
    const type = raw.readUInt16BE(nameEnd);
    const rdlength = raw.readUInt16BE(nameEnd + 8);
    const end = nameEnd + 10 + rdlength;
    if (end > raw.length) return 'malformed';
    if (type === QType.OPT) {
      if (edns !== null || nameEnd !== pos + 1) return 'malformed'; // OPT's owner is the root
      edns = {
        udpSize: Math.max(512, raw.readUInt16BE(nameEnd + 2)),
        version: raw[nameEnd + 5]!,
        dnssecOk: (raw.readUInt16BE(nameEnd + 6) & 0x8000) !== 0,
        optionsLength: rdlength,
      };
    }
    pos = end;
  }
  return edns;
}
