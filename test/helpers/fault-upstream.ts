import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Socket as TcpSocket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { ExecutionContext } from 'ava';

/** What the upstream does with one query: bytes to send back (after `delayMs`), or nothing. */
export interface Response {
  bytes?: Buffer;
  delayMs?: number;
  /** Send from another socket (a spoofer's port) instead of the one asked. */
  fromOtherPort?: boolean;
  /** Over TCP: close the connection without a reply (a reset, to the asker). */
  reset?: boolean;
}

export interface Received {
  transport: 'udp' | 'tcp';
  raw: Buffer;
  packet: dnsPacket.Packet;
  from: RemoteInfo | { address: string; port: number };
}

export type Handler = (q: Received) => Response | null;

export interface FaultUpstream {
  port: number;
  label: string;
  received: Received[];
  handler: Handler;
  close(): void;
}

/** A reply to `q` built with dns-packet: its question, the RD and RA bits, and what `extra` adds. */
export function answer(q: Received, extra: Partial<dnsPacket.Packet> = {}, rcode = 0): Buffer {
  return dnsPacket.encode({
    id: q.packet.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: q.packet.questions,
    ...extra,
  });
}

/** An A record for the question's name (in 127.77.0.0/16, never a real host). */
export const aFor = (q: Received, ip = '127.77.0.1', ttl = 300): dnsPacket.Answer => ({ name: q.packet.questions![0]!.name, type: 'A', ttl, data: ip });

function frame(m: Buffer): Buffer {
  const out = Buffer.alloc(m.length + 2);
  out.writeUInt16BE(m.length, 0);
  m.copy(out, 2);
  return out;
}

/**
 * A DNS server on 127.0.0.1 (UDP and TCP on one port) whose every reply is what the test's
 * handler says, so a test can be any upstream: silent, slow, lying, spoofing, oversized. It keeps
 * what it received, decoded, so a test can check what tsnet sent. Closed when the test ends.
 */
export async function faultUpstream(t: ExecutionContext, handler: Handler): Promise<FaultUpstream> {
  const other = createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', r));
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const port = udp.address().port;
    const conns = new Set<TcpSocket>();
    let closed = false;
    const state: FaultUpstream = {
      port,
      label: `127.0.0.1:${port}`,
      received: [],
      handler,
      close: () => {
        if (closed) return;
        closed = true;
        udp.close();
        other.close();
        tcp.close();
        for (const c of conns) c.destroy();
      },
    };
    const take = (transport: 'udp' | 'tcp', raw: Buffer, from: Received['from']): Response | null => {
      let packet: dnsPacket.Packet;
      try {
        packet = dnsPacket.decode(raw);
      } catch {
        return null;
      }
      const q = { transport, raw: Buffer.from(raw), packet, from };
      state.received.push(q);
      return state.handler(q);
    };
    udp.on('message', (msg, rinfo) => {
      const r = take('udp', msg, rinfo);
      if (r?.bytes === undefined) return;
      setTimeout(() => closed || (r.fromOtherPort ? other : udp).send(r.bytes!, rinfo.port, rinfo.address), r.delayMs ?? 0);
    });
    const tcp = createServer((conn) => {
      conns.add(conn);
      let buf = Buffer.alloc(0);
      conn.on('error', () => {});
      conn.on('close', () => conns.delete(conn));
      conn.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          const r = take('tcp', msg, { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0 });
          if (r?.reset) conn.resetAndDestroy();
          else if (r?.bytes !== undefined) setTimeout(() => conn.destroyed || conn.write(frame(r.bytes!)), r.delayMs ?? 0);
        }
      });
    });
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) {
      t.teardown(() => state.close());
      return state;
    }
    udp.close();
  }
  other.close();
  throw new Error('fault upstream: no port free over both UDP and TCP after 20 tries');
}
