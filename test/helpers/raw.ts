import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';

/** Sends one datagram to 127.0.0.1:`port`; resolves with the reply, or null after `timeoutMs`. */
export function udpAsk(port: number, message: Buffer, timeoutMs = 1000): Promise<Buffer | null> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(null), timeoutMs);
    const finish = (r: Buffer | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve(r);
    };
    socket.on('message', (msg) => finish(msg));
    socket.send(message, port, '127.0.0.1');
  });
}

/** Opens a TCP connection, writes `messages` framed in one write, and collects `expect` replies. */
export function tcpAsk(port: number, messages: Buffer[], expect = messages.length, timeoutMs = 3000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const conn = connect(port, '127.0.0.1');
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`got ${replies.length} of ${expect} TCP replies`));
    }, timeoutMs);
    conn.on('connect', () => conn.write(Buffer.concat(messages.map(frame))));
    conn.on('error', reject);
    conn.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + replies.at(-1)!.length);
      }
      if (replies.length >= expect) {
        clearTimeout(timer);
        conn.destroy();
        resolve(replies);
      }
    });
  });
}

export function frame(m: Buffer): Buffer {
  const out = Buffer.alloc(m.length + 2);
  out.writeUInt16BE(m.length, 0);
  m.copy(out, 2);
  return out;
}

/** A query built with dns-packet. */
export const query = (name: string, type: dnsPacket.RecordType = 'A', id = 4242, extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], ...extra });

export const rcodeOf = (reply: Buffer): number => reply.readUInt16BE(2) & 0xf;
