import { createServer, type Server, type Socket } from 'node:net';
import type { ListenerContext, Pipeline } from './pipeline.js';

export interface TcpOptions {
  /** A connection with no query for this long is closed (RFC 7766 6.2.3). */
  idleTimeoutMs: number;
  /** Queries one connection may have unanswered at once; reading pauses beyond it. */
  maxPipelined?: number;
}

function frame(reply: Buffer): Buffer {
  const out = Buffer.allocUnsafe(reply.length + 2);
  out.writeUInt16BE(reply.length, 0);
  reply.copy(out, 2);
  return out;
}

/**
 * DNS over TCP: length-prefixed messages, any number per connection, answered as they are
 * ready (possibly out of order, matched by ID as RFC 7766 allows).
 */
function serveConnection(conn: Socket, pipeline: Pipeline, ctx: ListenerContext, opts: TcpOptions): void {
  const max = opts.maxPipelined ?? 100;
  let buffered = Buffer.alloc(0);
  let pending = 0;
  const source = { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0 };
  conn.setTimeout(opts.idleTimeoutMs, () => conn.destroy());
  conn.on('error', () => conn.destroy());
  conn.on('data', (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const len = buffered.readUInt16BE(0);
      const msg = buffered.subarray(2, 2 + len);
      buffered = buffered.subarray(2 + len);
      const answered = pipeline.handle(msg, source, 'tcp', ctx, (reply) => {
        pending--;
        if (!conn.destroyed) conn.write(frame(reply));
        if (pending < max) conn.resume();
      });
      if (answered && ++pending >= max) conn.pause();
    }
  });
}

/** Listens for DNS over TCP on `address:port` (or on the listening socket `fd`); rejects with the error naming the address. */
export function listenTcp(address: string, port: number, pipeline: Pipeline, ctx: ListenerContext, opts: TcpOptions, fd?: number): Promise<Server> {
  const server = createServer((conn) => serveConnection(conn, pipeline, ctx, opts));
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`tcp ${address}:${port}: ${err.message}`, { cause: err })));
    server.listen(fd === undefined ? { host: address, port, exclusive: true } : { fd }, () => {
      server.removeAllListeners('error');
      resolve(server);
    });
  });
}
