import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { PLAIN_UDP_SIZE } from '../wire/constants.js';
import { truncate, udpLimit } from '../wire/reply.js';
import type { ListenerContext, Pipeline } from './pipeline.js';
import type { RateLimiter } from './rate-limit.js';

/**
 * Hands Node the UDP socket `fd`, already bound to `address:port` (by `boundUdpFd`, here or
 * inside a sandbox's namespace).
 */
export function adoptUdp(address: string, port: number, fd: number): Promise<Socket> {
  const socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', reuseAddr: false });
  return new Promise((resolve, reject) => {
    socket.once('error', (err) => reject(new Error(`udp ${address}:${port}: ${err.message}`, { cause: err })));
    socket.bind({ fd }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

export interface UdpServeOptions {
  onError(err: Error): void;
  /** Per-prefix response rate limit; none by default. */
  limiter?: RateLimiter;
}

/**
 * Serves queries arriving on `socket`: each datagram in, at most one datagram out, never over
 * the asker's limit. With a limiter, a source over its rate gets no work done for it (dropped)
 * or, every slip-th time, a truncated reply.
 */
export function serveUdp(socket: Socket, pipeline: Pipeline, ctx: ListenerContext, { onError, limiter }: UdpServeOptions): void {
  socket.on('error', onError);
  socket.on('message', (msg, rinfo) => {
    const admission = limiter?.admit(rinfo.address) ?? 'send';
    if (admission === 'drop') return;
    pipeline.handle(msg, rinfo, 'udp', ctx, (reply, q) => {
      const limit = admission === 'slip' ? 0 : q === null ? PLAIN_UDP_SIZE : udpLimit(q.edns);
      socket.send(truncate(reply, limit), rinfo.port, rinfo.address);
    });
  });
}
