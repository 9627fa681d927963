import { connect, Socket } from 'node:net';
import { socketInNetns } from '../../src/netns/socket-in-netns.js';
import { randomInt } from 'node:crypto';
import type { Upstream } from '../../src/server/upstreams.js';
import { layoutMessage } from '../../src/wire/layout.js';
import type { Query } from '../../src/wire/query.js';
import { upstreamQuery } from './upstream-message.js';

/** The most a TCP reply may take in memory: one 16-bit framed message. */
const MAX_FRAME = 2 + 65_535;

/**
 * One query over TCP (RFC 7766), for replies that came back truncated over UDP. Resolves with
 * the reply, or null on timeout, error or a reply that does not match what was asked. Never
 * rejects: a socket that cannot be made (EMFILE, a namespace that is gone) is a null too.
 */
export function tcpExchange(upstream: Upstream, q: Query, timeoutMs: number, netns?: string): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const id = randomInt(0x10000);
    const message = upstreamQuery(q, id);
    const frame = Buffer.alloc(message.length + 2);
    frame.writeUInt16BE(message.length, 0);
    message.copy(frame, 2);
    let socket: Socket;
    try {
      // In a sandbox's namespace the socket is made there and Node connects the adopted fd.
      socket =
        netns === undefined
          ? connect({ host: upstream.address, port: upstream.port })
          : new Socket({ fd: socketInNetns(netns, 'tcp', upstream.family) }).connect({ host: upstream.address, port: upstream.port });
    } catch {
      resolve(null);
      return;
    }
    let data = Buffer.alloc(0);
    const finish = (reply: Buffer | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('connect', () => socket.write(frame));
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      if (data.length > MAX_FRAME) return finish(null);
      if (data.length < 2 || data.length < 2 + data.readUInt16BE(0)) return;
      const msg = data.subarray(2, 2 + data.readUInt16BE(0));
      const layout = layoutMessage(msg);
      const matches =
        msg.readUInt16BE(0) === id &&
        (msg.readUInt16BE(2) & 0x8000) !== 0 &&
        layout !== null &&
        layout.questionName === q.name &&
        layout.questionType === q.type &&
        layout.questionClass === q.qclass &&
        layout.questionEnd === q.questionEnd;
      finish(matches ? Buffer.from(msg) : null);
    });
  });
}
