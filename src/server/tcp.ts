import { createServer, type Server, type Socket } from 'node:net';
import { TCP_MESSAGE_LIMIT, truncate } from '../wire/reply.js';
import type { ListenerContext, Pipeline } from './pipeline.js';

export interface TcpOptions {
  /** A connection with no query and no reply owed for this long is closed (RFC 7766 6.2.3). */
  idleTimeoutMs: number;
  /**
   * A message must arrive whole within this time of its first byte, and a reply the client does
   * not read must drain within it: a client that trickles a byte at a time, or never reads, is
   * closed instead of holding a descriptor and memory forever.
   */
  progressTimeoutMs?: number;
  /** Connections open at once on this listener; more are closed on accept (default 256). */
  maxConnections?: number;
  /** Queries one connection may have unanswered at once; reading pauses beyond it (default 100). */
  maxPipelined?: number;
  /** Called when the listener refuses or loses a connection, with the reason (for metrics). */
  onDrop?(reason: 'limit' | 'idle' | 'stalled' | 'malformed' | 'accept-error'): void;
  onError?(err: Error): void;
}

/** The TCP side of one listener: its server and the connections it has open, all closed together. */
export interface TcpListener {
  server: Server;
  /** Stops accepting and destroys every open connection: never waits on a client. */
  close(): Promise<void>;
}

function frame(reply: Buffer): Buffer {
  // A reply too big for a frame (thousands of aliases) keeps the answers that fit, with TC.
  const body = truncate(reply, TCP_MESSAGE_LIMIT, 'answers');
  const out = Buffer.allocUnsafe(body.length + 2);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

/**
 * DNS over TCP on one connection: length-prefixed messages, any number per connection,
 * answered as they are ready (possibly out of order, matched by ID as RFC 7766 allows). Reading
 * stops while `maxPipelined` queries are unanswered or the client is not reading its replies
 * (the socket's write buffer is full), so one connection's memory is bounded.
 */
class Connection {
  #buffered: Buffer = Buffer.alloc(0);
  #pending = 0;
  #blockedOnWrite = false;
  #pumping = false;
  #timer: NodeJS.Timeout | undefined;
  /** What the armed timer is waiting for, so it is re-armed only when that changes. */
  #waitingFor: 'idle' | 'message' | 'drain' | 'us' = 'us';
  readonly #source: { address: string; port: number };

  constructor(
    readonly conn: Socket,
    readonly pipeline: Pipeline,
    readonly ctx: ListenerContext,
    readonly opts: Required<Omit<TcpOptions, 'onError'>>,
  ) {
    this.#source = { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0 };
    conn.on('error', () => conn.destroy());
    conn.on('close', () => clearTimeout(this.#timer));
    conn.on('drain', () => {
      this.#blockedOnWrite = false;
      this.#pump();
    });
    conn.on('data', (chunk: Buffer) => {
      this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
      this.#pump();
    });
    this.#arm();
  }

  #blocked(): boolean {
    return this.#blockedOnWrite || this.#pending >= this.opts.maxPipelined;
  }

  /** Answers every whole message buffered, as far as the bounds allow, then decides whether to read on. */
  #pump(): void {
    // Replies that are ready at once come back while this loop runs: it picks their effect up itself.
    if (this.#pumping) return;
    this.#pumping = true;
    let progressed = false;
    while (!this.#blocked() && this.#buffered.length >= 2 && this.#buffered.length >= 2 + this.#buffered.readUInt16BE(0)) {
      const len = this.#buffered.readUInt16BE(0);
      const msg = this.#buffered.subarray(2, 2 + len);
      this.#buffered = this.#buffered.subarray(2 + len);
      const answered = this.pipeline.handle(msg, this.#source, 'tcp', this.ctx, (reply) => this.#reply(reply));
      if (!answered) {
        // Too short for a header, or a response: nothing a client sends on purpose (RFC 7766 7).
        this.opts.onDrop('malformed');
        this.conn.destroy();
        this.#pumping = false;
        return;
      }
      this.#pending++;
      progressed = true;
    }
    this.#pumping = false;
    // While blocked, unread bytes wait in the kernel, not here.
    if (this.#blocked()) this.conn.pause();
    else this.conn.resume();
    this.#arm(progressed);
  }

  #reply(reply: Buffer): void {
    this.#pending--;
    if (this.conn.destroyed) return;
    if (!this.conn.write(frame(reply))) this.#blockedOnWrite = true;
    this.#pump();
  }

  /** One timer for the one thing the connection waits on: a new query, the rest of one, or the client reading. */
  #arm(progressed = false): void {
    const waitingFor = this.#blockedOnWrite ? 'drain' : this.#buffered.length > 0 ? 'message' : this.#pending > 0 ? 'us' : 'idle';
    // More bytes of the same message are no progress: its deadline runs from its first byte.
    if (!progressed && waitingFor === this.#waitingFor && (this.#timer !== undefined || waitingFor === 'us')) return;
    this.#waitingFor = waitingFor;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (waitingFor === 'us') return;
    const ms = waitingFor === 'idle' ? this.opts.idleTimeoutMs : this.opts.progressTimeoutMs;
    this.#timer = setTimeout(() => {
      this.opts.onDrop(waitingFor === 'idle' ? 'idle' : 'stalled');
      this.conn.destroy();
    }, ms);
    this.#timer.unref();
  }
}

/** Listens for DNS over TCP on `address:port` (or on the listening socket `fd`); rejects with the error naming the address. */
export function listenTcp(address: string, port: number, pipeline: Pipeline, ctx: ListenerContext, opts: TcpOptions, fd?: number): Promise<TcpListener> {
  const full = {
    idleTimeoutMs: opts.idleTimeoutMs,
    progressTimeoutMs: opts.progressTimeoutMs ?? Math.min(opts.idleTimeoutMs, 3000),
    maxConnections: opts.maxConnections ?? 256,
    maxPipelined: opts.maxPipelined ?? 100,
    onDrop: opts.onDrop ?? (() => {}),
  };
  const open = new Set<Socket>();
  const server = createServer((conn) => {
    // Node's own maxConnections would do this too, but silently: counted here for metrics.
    if (open.size >= full.maxConnections) {
      full.onDrop('limit');
      conn.destroy();
      return;
    }
    open.add(conn);
    conn.on('close', () => open.delete(conn));
    new Connection(conn, pipeline, ctx, full);
  });
  const close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const c of open) c.destroy();
    });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`tcp ${address}:${port}: ${err.message}`, { cause: err })));
    server.listen(fd === undefined ? { host: address, port, exclusive: true } : { fd }, () => {
      server.removeAllListeners('error');
      // accept() failing (EMFILE, ENFILE) is the kernel saying no to one client, not a reason to die.
      server.on('error', (err) => {
        full.onDrop('accept-error');
        opts.onError?.(err);
      });
      resolve({ server, close });
    });
  });
}
