import { QType } from './constants.js';
import { readName, skipName } from './name.js';

/** Where one resource record sits in a message. */
export interface RecordSpan {
  /** 0 answer, 1 authority, 2 additional. */
  section: 0 | 1 | 2;
  type: number;
  start: number;
  /** Offset of the 32-bit TTL; for OPT these bytes are the extended rcode, version and flags. */
  ttlOffset: number;
  rdataOffset: number;
  end: number;
}

/** The layout of a whole message, found without decoding record data. */
export interface MessageLayout {
  questionName: string;
  questionType: number;
  questionClass: number;
  questionEnd: number;
  records: RecordSpan[];
}

/**
 * Walks a message (typically an upstream reply) once: the question and the span of every
 * record. Used to check replies, patch TTLs in cached answers and truncate. Null if malformed.
 */
export function layoutMessage(buf: Buffer): MessageLayout | null {
  if (buf.length < 12) return null;
  if (buf.readUInt16BE(4) !== 1) return null;
  const q = readName(buf, 12);
  if (q === null || q.end + 4 > buf.length) return null;
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  const records: RecordSpan[] = [];
  let pos = q.end + 4;
  for (const section of [0, 1, 2] as const) {
    for (let i = 0; i < counts[section]; i++) {
      const nameEnd = skipName(buf, pos);
      if (nameEnd < 0 || nameEnd + 10 > buf.length) return null;
      const end = nameEnd + 10 + buf.readUInt16BE(nameEnd + 8);
      if (end > buf.length) return null;
      records.push({
        section,
        type: buf.readUInt16BE(nameEnd),
        start: pos,
        ttlOffset: nameEnd + 4,
        rdataOffset: nameEnd + 10,
        end,
      });
      pos = end;
    }
  }
  return {
    questionName: q.name,
    questionType: buf.readUInt16BE(q.end),
    questionClass: buf.readUInt16BE(q.end + 2),
    questionEnd: q.end + 4,
    records,
  };
}

/** The OPT record of a layout, if any. */
export const optRecord = (layout: MessageLayout): RecordSpan | undefined =>
  layout.records.find((r) => r.section === 2 && r.type === QType.OPT);

/**
 * Rewrites every record owner that repeats the question name as a pointer to it (offset 12):
 * smaller replies, and the asker's letter case, copied into the question afterwards, is the case
 * of every such owner. Only for messages without compression (dns-packet's output): no pointer
 * moves.
 */
export function pointOwnersAtQuestion(buf: Buffer, questionEnd: number): Buffer {
  const nameLen = questionEnd - 4 - 12;
  const layout = nameLen < 2 ? null : layoutMessage(buf);
  if (layout === null) return buf;
  const parts: Buffer[] = [];
  let from = 0;
  for (const r of layout.records) {
    // dns-packet wrote the question and these owners from the same name: the bytes are equal.
    if (r.ttlOffset - 4 - r.start !== nameLen || buf.compare(buf, 12, 12 + nameLen, r.start, r.start + nameLen) !== 0) continue;
    parts.push(buf.subarray(from, r.start), POINTER_TO_QUESTION);
    from = r.start + nameLen;
  }
  if (parts.length === 0) return buf;
  parts.push(buf.subarray(from));
  return Buffer.concat(parts);
}
const POINTER_TO_QUESTION = Buffer.from([0xc0, 0x0c]);
