// R1: random and mutated DNS messages against a running server, over UDP and TCP. Shared by the
// test (50k datagrams, 500 streams) and `npm run bench:fuzz` (1 M datagrams, 5k streams).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';

export interface FuzzReport {
  datagrams: number;
  replies: number;
  streams: number;
  streamReplies: number;
  /** Broken promises: a reply to a response (QR=1), more replies than queries, a reply to garbage larger than it. */
  violations: string[];
  seconds: number;
}

const opt = (size = 1232): dnsPacket.Answer => ({ name: '.', type: 'OPT', udpPayloadSize: size } as unknown as dnsPacket.Answer);
const SEEDS = [
  dnsPacket.encode({ id: 1, type: 'query', flags: 0x100, questions: [{ name: 'web.app', type: 'A' }], additionals: [opt()] }),
  dnsPacket.encode({ id: 1, type: 'query', flags: 0x100, questions: [{ name: 'tasks.api', type: 'A' }] }),
  dnsPacket.encode({ id: 1, type: 'query', flags: 0x100, questions: [{ name: '_http._tcp.api', type: 'SRV' }], additionals: [opt(4096)] }),
  dnsPacket.encode({ id: 1, type: 'query', flags: 0x100, questions: [{ name: '2.0.30.172.in-addr.arpa', type: 'PTR' }] }),
];

/** Hand-made shapes a byte mutator rarely finds: pointer loops, 127+ labels, OPT twice, QR set, wrong counts. */
function crafted(seed: Buffer, kind: number, n: number): Buffer {
  const b = Buffer.from(seed);
  switch (kind) {
    case 0: // a question name that is a pointer to itself
      return Buffer.concat([b.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    case 1: // 130 one-byte labels: past the 255-byte name limit
      return Buffer.concat([b.subarray(0, 12), Buffer.from(Array.from({ length: 130 }, () => [1, 0x61]).flat()), Buffer.from([0, 0, 1, 0, 1])]);
    case 2: {
      // one OPT more than the seed has
      const out = Buffer.concat([b, Buffer.from([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0])]);
      out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
      return out;
    }
    case 3: // QR set: a response must never be answered
      b[2] = b[2]! | 0x80;
      return b;
    case 4: // counts that promise records that are not there
      b.writeUInt16BE(n % 65536, 4 + 2 * (n % 4));
      return b;
    default: // cut anywhere
      return b.subarray(0, n % b.length);
  }
}

const datagram = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.nat(SEEDS.length - 1), fc.array(fc.tuple(fc.nat(300), fc.nat(255)), { minLength: 1, maxLength: 6 })).map(([s, flips]) => {
    const b = Buffer.from(SEEDS[s]!);
    for (const [at, v] of flips) b[at % b.length] = v;
    return b;
  }),
  fc.tuple(fc.nat(SEEDS.length - 1), fc.nat(5), fc.nat(1 << 20)).map(([s, kind, n]) => crafted(SEEDS[s]!, kind, n)),
  fc.nat(SEEDS.length - 1).map((s) => Buffer.from(SEEDS[s]!)),
);

/**
 * Whether a message asks one well-formed question, as an independent decoder reads it (records
 * after the question are not judged: a server may ignore an additional it does not use).
 */
function wellFormed(m: Buffer): boolean {
  if (m.length < 12 || m[2]! & 0x80 || m.readUInt16BE(4) !== 1) return false;
  const headerAndQuestion = Buffer.from(m);
  headerAndQuestion.fill(0, 6, 12);
  try {
    const p = dnsPacket.decode(headerAndQuestion);
    return p.questions?.length === 1;
  } catch {
    return false;
  }
}

/**
 * Sends `count` fuzzed datagrams to `port` from one socket, 256 at a time; each carries its
 * sequence number as its ID so every reply is matched to the datagram it answers.
 */
export async function fuzzDatagrams(port: number, count: number, seed = 1): Promise<Pick<FuzzReport, 'datagrams' | 'replies' | 'violations'>> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const sent = new Map<number, { bytes: Buffer; length: number; response: boolean; garbage: boolean; answered: number }>();
  const violations: string[] = [];
  let replies = 0;
  socket.on('message', (m) => {
    replies++;
    const q = m.length >= 2 ? sent.get(m.readUInt16BE(0)) : undefined;
    if (q === undefined) return void violations.push(`reply with an ID never sent (${m.length} bytes)`);
    if (++q.answered > 1) violations.push(`datagram ${m.readUInt16BE(0)} answered twice`);
    if (q.response) violations.push(`a response (QR=1) was answered`);
    if (q.garbage && m.length > q.length) violations.push(`a ${q.length}-byte malformed datagram (${q.bytes.toString('hex')}) got a ${m.length}-byte reply (${m.toString('hex')})`);
  });
  let done = 0;
  for (let batch = 0; done < count; batch++) {
    const packets = fc.sample(datagram, { numRuns: Math.min(4096, count - done), seed: seed + batch });
    for (let i = 0; i < packets.length; i += 256) {
      await Promise.all(
        packets.slice(i, i + 256).map((p, j) => {
          const id = (done + i + j) % 65536;
          if (p.length >= 2) p.writeUInt16BE(id, 0);
          sent.set(id, { bytes: p, length: p.length, response: p.length >= 3 && (p[2]! & 0x80) !== 0, garbage: !wellFormed(p), answered: 0 });
          return new Promise((r) => socket.send(p, port, '127.0.0.1', r));
        }),
      );
      // Let replies in before the next batch reuses their IDs' neighbours.
      await new Promise((r) => setTimeout(r, 2));
    }
    done += packets.length;
  }
  await new Promise((r) => setTimeout(r, 300));
  socket.close();
  return { datagrams: count, replies, violations: [...new Set(violations)].slice(0, 20) };
}

/** What one TCP stream sends: framed seeds, mutated frames, lying length prefixes, then it ends or hangs. */
const stream = fc.array(
  fc.oneof(
    fc.nat(SEEDS.length - 1).map((s) => frameOf(SEEDS[s]!)),
    datagram.map(frameOf),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a)),
  ),
  { minLength: 1, maxLength: 20 },
);
function frameOf(m: Buffer): Buffer {
  const out = Buffer.alloc(m.length + 2);
  out.writeUInt16BE(m.length, 0);
  m.copy(out, 2);
  return out;
}

/** Opens `count` TCP streams, 50 at a time, each writing a fuzzed byte stream; counts whole replies. */
export async function fuzzStreams(port: number, count: number, seed = 1): Promise<Pick<FuzzReport, 'streams' | 'streamReplies'>> {
  const all = fc.sample(stream, { numRuns: count, seed });
  let streamReplies = 0;
  for (let i = 0; i < all.length; i += 50) {
    await Promise.all(
      all.slice(i, i + 50).map(
        (chunks, j) =>
          new Promise<void>((resolve) => {
            const c = connect(port, '127.0.0.1');
            let buf = Buffer.alloc(0);
            const end = setTimeout(() => c.destroy(), 300);
            c.on('connect', () => {
              for (const chunk of chunks) c.write(chunk);
              if ((i + j) % 3 === 0) c.end();
            });
            c.on('data', (d) => {
              buf = Buffer.concat([buf, d]);
              while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
                streamReplies++;
                buf = buf.subarray(2 + buf.readUInt16BE(0));
              }
            });
            c.on('error', () => {});
            c.on('close', () => {
              clearTimeout(end);
              resolve();
            });
          }),
      ),
    );
  }
  return { streams: count, streamReplies };
}

/** Both, then the report. */
export async function fuzz(port: number, opts: { datagrams: number; streams: number; seed?: number }): Promise<FuzzReport> {
  const started = performance.now();
  const d = await fuzzDatagrams(port, opts.datagrams, opts.seed);
  const s = await fuzzStreams(port, opts.streams, opts.seed);
  return { ...d, ...s, seconds: (performance.now() - started) / 1000 };
}
