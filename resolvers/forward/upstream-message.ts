import { EDNS_UDP_SIZE, Flag, QType } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';

/**
 * The query tsnet sends upstream for `q`: a fresh header (`id`, the asker's RD and CD), the
 * asker's question bytes, and tsnet's own OPT (UDP size 1232, DO copied). Nothing else of the
 * asker's message leaves: its COOKIE, ECS or padding options belong to the hop it came over
 * (RFC 7873 5.4, RFC 7871 7.1), and carrying them would let one asker's options shape an answer
 * cached for everyone.
 */
export function upstreamQuery(q: Query, id: number): Buffer {
  const out = Buffer.alloc(q.questionEnd + 11);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(q.flags & (Flag.RD | Flag.CD), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  q.raw.copy(out, 12, 12, q.questionEnd);
  const opt = q.questionEnd;
  out.writeUInt16BE(QType.OPT, opt + 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, opt + 3);
  out.writeUInt16BE(q.edns?.dnssecOk ? 0x8000 : 0, opt + 7);
  return out;
}
