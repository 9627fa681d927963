import { Flag } from '../../src/wire/constants.js';
import { optBytes } from '../../src/wire/reply.js';
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
  optBytes({ dnssecOk: q.edns?.dnssecOk ?? false }, 0).copy(out, q.questionEnd);
  return out;
}
