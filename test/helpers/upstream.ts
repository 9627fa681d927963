import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import dnsPacket from 'dns-packet';
import type { ExecutionContext } from 'ava';

export type Behaviour = 'answer' | 'nxdomain' | 'silent' | 'servfail' | 'refused' | 'truncate' | 'wrong-id' | 'wrong-port' | 'wrong-question';

export interface FakeUpstream {
  port: number;
  /** `127.0.0.1:port`, as --upstream takes it. */
  label: string;
  /** Queries received over UDP and TCP. */
  udpQueries: number;
  tcpQueries: number;
  behaviour: Behaviour;
  delayMs: number;
}

export interface UpstreamOptions {
  behaviour?: Behaviour;
  delayMs?: number;
  /** TTL of answers (default 300). */
  ttl?: number;
  /** Address records per answer (default 1; `truncate` answers over TCP with 60). */
  records?: number;
}

/**
 * A UDP socket on a port that is free over TCP too (checked with a probe listener), since a DNS
 * server answers on both; retried when some other test holds the TCP side.
 */
async function udpWithFreeTcpTwin(): Promise<[Socket, number]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const port = udp.address().port;
    const probe = createServer();
    const free = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise((r) => probe.close(r));
      return [udp, port];
    }
    udp.close();
  }
  throw new Error('fake upstream: no port free over both UDP and TCP after 20 tries');
}

/**
 * A DNS server on 127.0.0.1 that misbehaves on request. Answers every A query with addresses
 * in 127.77.0.0/16 (never a real host), NXDOMAIN with an SOA for `nxdomain`.
 */
export async function startUpstream(t: ExecutionContext, opts: UpstreamOptions = {}): Promise<FakeUpstream> {
  const liar = createSocket('udp4');
  await new Promise<void>((r) => liar.bind(0, '127.0.0.1', r));
  const [udp, port] = await udpWithFreeTcpTwin();
  const state: FakeUpstream = {
    port,
    label: `127.0.0.1:${port}`,
    udpQueries: 0,
    tcpQueries: 0,
    behaviour: opts.behaviour ?? 'answer',
    delayMs: opts.delayMs ?? 0,
  };
  const ttl = opts.ttl ?? 300;

  const reply = (query: dnsPacket.Packet, over: 'udp' | 'tcp'): Buffer => {
    const q = query.questions![0]!;
    const base = { id: query.id, type: 'response' as const, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: [q] };
    const count = state.behaviour === 'truncate' && over === 'tcp' ? 60 : (opts.records ?? 1);
    const answers = q.type === 'A' ? Array.from({ length: count }, (_, i) => ({ name: q.name, type: 'A' as const, ttl, data: `127.77.${i >> 8}.${(i & 255) + 1}` })) : [];
    switch (state.behaviour) {
      case 'servfail':
        return dnsPacket.encode({ ...base, flags: base.flags | 2 });
      case 'refused':
        return dnsPacket.encode({ ...base, flags: base.flags | 5 });
      case 'nxdomain':
        return dnsPacket.encode({
          ...base,
          flags: base.flags | 3,
          authorities: [{ name: 'example', type: 'SOA', ttl: 60, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: 30 } }],
        });
      case 'truncate':
        return over === 'udp' ? dnsPacket.encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE }) : dnsPacket.encode({ ...base, answers });
      case 'wrong-id':
        return dnsPacket.encode({ ...base, id: (query.id! + 1) & 0xffff, answers });
      case 'wrong-question':
        return dnsPacket.encode({ ...base, questions: [{ ...q, name: `x${q.name}` }], answers });
      default:
        return dnsPacket.encode({ ...base, answers });
    }
  };

  udp.on('message', (msg, rinfo) => {
    state.udpQueries++;
    if (state.behaviour === 'silent') return;
    const out = reply(dnsPacket.decode(msg), 'udp');
    const sender = state.behaviour === 'wrong-port' ? liar : udp;
    setTimeout(() => sender.send(out, rinfo.port, rinfo.address), state.delayMs);
  });

  const tcp: Server = createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on('error', () => {});
    conn.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        state.tcpQueries++;
        if (state.behaviour === 'silent') continue;
        const out = reply(dnsPacket.decode(msg), 'tcp');
        const framed = Buffer.alloc(out.length + 2);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        conn.write(framed);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', (err) => reject(new Error(`fake upstream: tcp port ${port}: ${err.message}`)));
    tcp.listen(port, '127.0.0.1', resolve);
  });
  const sockets: Socket[] = [udp, liar];
  t.teardown(() => {
    for (const s of sockets) s.close();
    tcp.close();
  });
  return state;
}
