import dnsPacket from 'dns-packet';
import { QType } from '../../src/wire/constants.js';
import { layoutMessage, type MessageLayout, type RecordSpan } from '../../src/wire/layout.js';
import { readName } from '../../src/wire/name.js';
import type { Relayable } from '../../src/wire/reply.js';

const DNAME = 39;
const DS = 43;
const RRSIG = 46;
const NSEC = 47;
const NSEC3 = 50;
const AUTHORITY_TYPES = new Set<number>([QType.SOA, QType.NS, DS, RRSIG, NSEC, NSEC3]);
const GLUE_TYPES = new Set<number>([QType.A, QType.AAAA, RRSIG]);

const within = (name: string, zone: string): boolean => zone === '' || name === zone || name.endsWith('.' + zone);
const parentOf = (name: string): string => (name.includes('.') ? name.slice(name.indexOf('.') + 1) : '');

/** The name a record's RDATA points at, for the types whose glue may ride in the additionals. */
function targetOf(buf: Buffer, r: RecordSpan): string | undefined {
  const skip = r.type === QType.NS || r.type === QType.CNAME ? 0 : r.type === QType.MX ? 2 : r.type === QType.SRV ? 6 : -1;
  return skip < 0 ? undefined : readName(buf, r.rdataOffset + skip)?.name;
}

/**
 * The names the answer may speak of: the question and every CNAME target reached from it, in
 * any order the records come in (DNAMEs above a chain name are kept; their synthesised CNAME
 * extends the chain).
 */
function cnameChain(buf: Buffer, answers: readonly { r: RecordSpan; owner: string }[], qname: string, qtype: number): Set<string> {
  const chain = new Set([qname]);
  if (qtype === QType.CNAME) return chain;
  for (let grew = true; grew; ) {
    grew = false;
    for (const { r, owner } of answers) {
      if (r.type !== QType.CNAME || !chain.has(owner)) continue;
      const target = targetOf(buf, r);
      if (target !== undefined && !chain.has(target)) {
        chain.add(target);
        grew = true;
      }
    }
  }
  return chain;
}

/** Which records of an upstream reply tsnet relays and caches (unbound's scrubber is the model). */
function keptRecords(buf: Buffer, layout: MessageLayout): boolean[] | null {
  const owners: string[] = [];
  for (const r of layout.records) {
    const owner = readName(buf, r.start)?.name;
    if (owner === undefined) return null;
    owners.push(owner);
  }
  const qname = layout.questionName;
  const qtype = layout.questionType;
  const answers = layout.records.map((r, i) => ({ r, owner: owners[i]! })).filter((x) => x.r.section === 0);
  const chain = cnameChain(buf, answers, qname, qtype);
  const last = [...chain].at(-1)!;
  const inAnswer = (r: RecordSpan, owner: string): boolean =>
    (chain.has(owner) && (r.type === qtype || qtype === QType.ANY || r.type === QType.CNAME || r.type === RRSIG)) ||
    (r.type === DNAME && [...chain].some((n) => n !== owner && within(n, owner)));
  // The zone the reply speaks for: the deepest SOA or NS owner above the end of the chain.
  // Without one, the parent of that name: its siblings' glue is the most an answer can vouch for.
  let apex: string | undefined;
  for (const [i, r] of layout.records.entries()) {
    const owner = owners[i]!;
    if (r.section === 1 && (r.type === QType.SOA || r.type === QType.NS) && within(last, owner) && owner.length >= (apex?.length ?? 0)) apex = owner;
  }
  const zone = apex ?? parentOf(last);
  const kept = layout.records.map((r, i) => (r.section === 0 ? inAnswer(r, owners[i]!) : r.section === 1 ? AUTHORITY_TYPES.has(r.type) && within(owners[i]!, zone) : false));
  const targets = new Set<string>();
  for (const [i, r] of layout.records.entries()) {
    const target = kept[i] ? targetOf(buf, r) : undefined;
    if (target !== undefined) targets.add(target);
  }
  for (const [i, r] of layout.records.entries()) {
    if (r.section === 2 && GLUE_TYPES.has(r.type) && targets.has(owners[i]!) && within(owners[i]!, zone)) kept[i] = true;
  }
  return kept;
}

/** The reply rebuilt from the records kept: names are expanded so no pointer dangles. */
function rebuild(buf: Buffer, layout: MessageLayout, kept: readonly boolean[]): Buffer | null {
  let packet: dnsPacket.Packet;
  try {
    packet = dnsPacket.decode(buf);
  } catch {
    return null;
  }
  const sections = [packet.answers ?? [], packet.authorities ?? [], packet.additionals ?? []];
  const keep = sections.map((): dnsPacket.Answer[] => []);
  layout.records.forEach((r, i) => {
    const index = layout.records.slice(0, i).filter((x) => x.section === r.section).length;
    if (kept[i]) keep[r.section]!.push(sections[r.section]![index]!);
  });
  try {
    const out = dnsPacket.encode({ ...packet, answers: keep[0]!, authorities: keep[1]!, additionals: keep[2]! });
    // The question goes back byte for byte: its case is matched against what was asked.
    buf.copy(out, 12, 12, layout.questionEnd);
    return out;
  } catch {
    return null;
  }
}

/**
 * An upstream reply reduced to what the question may be answered with: answer records on the
 * question's CNAME chain, authority records of the zone that answered, glue for names those
 * records point at, and no OPT (its options were for tsnet; the extended rcode is kept in
 * `rcode`). Null when the reply does not parse: it is then a bad reply, never relayed.
 */
export function scrub(reply: Buffer): Relayable | null {
  const layout = layoutMessage(reply);
  if (layout === null) return null;
  const opt = layout.records.find((r) => r.section === 2 && r.type === QType.OPT);
  const rcode = ((opt === undefined ? 0 : reply[opt.ttlOffset]!) << 4) | (reply.readUInt16BE(2) & 0xf);
  const kept = keptRecords(reply, layout);
  if (kept === null) return null;
  const firstDropped = kept.indexOf(false);
  if (firstDropped === -1) return { bytes: reply, rcode };
  // The common case: only trailing records go (the OPT); the rest stands as it is, pointers and all.
  if (kept.slice(firstDropped).every((k) => !k)) {
    const bytes = Buffer.from(reply.subarray(0, layout.records[firstDropped]!.start));
    const counts = [0, 0, 0];
    layout.records.forEach((r, i) => kept[i] && counts[r.section]!++);
    counts.forEach((c, s) => bytes.writeUInt16BE(c, 6 + 2 * s));
    return { bytes, rcode };
  }
  const bytes = rebuild(reply, layout, kept);
  return bytes === null ? null : { bytes, rcode };
}
