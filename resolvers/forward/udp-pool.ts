import { createSocket, type Socket } from 'node:dgram';
import type { Upstream } from '../../src/server/upstreams.js';
import { layoutMessage } from '../../src/wire/layout.js';
import type { Query } from '../../src/wire/query.js';
import { RandomPool } from './random.js';
import { socketInNetns } from '../../src/netns/socket-in-netns.js';
import { upstreamQuery } from './upstream-message.js';

/** What became of one query: the reply, or why there is none. */
export type UdpOutcome = { reply: Buffer } | { reply: null; reason: 'timeout' | 'unreachable' | 'socket'; detail?: string };

interface Pending {
  query: Query;
  resolve(outcome: UdpOutcome): void;
  /** performance.now() after which the sweep gives up on it. */
  expiresAt: number;
}

/** How often waiting queries are checked for expiry: one timer for the pool, none per query. */
const SWEEP_MS = 20;

interface Slot {
  socket: Socket;
  pending: Map<number, Pending>;
  uses: number;
  /** Replaced by a fresh socket: closed as soon as its last reply is in. */
  retired: boolean;
  /** Resolved once bound and connected; `ready` spares a microtask on every query after that. */
  connected: Promise<void>;
  ready: boolean;
}

export interface UdpPoolOptions {
  upstream: Upstream;
  /** Sockets kept open to the upstream, each on its own kernel-chosen (random) port. */
  size?: number;
  /** A socket is replaced by one on a fresh port after this many queries (RFC 5452 9.2). */
  maxUses?: number;
  /** Called for every reply that is dropped, with the reason. */
  onDrop?(reason: string): void;
  /** Open the sockets inside this network namespace. */
  netns?: string;
}

/**
 * UDP sockets to one upstream. Each is connected to it, so the kernel takes datagrams from that
 * server's address and port only and binds the socket to the local address that reaches it
 * (127.0.0.1 for a loopback server): nothing on a bridge can find or feed these ports. Each
 * query goes out on a random socket with a random ID unused on it; sockets move to fresh random
 * ports as they wear out, so a spoofer must guess both. A reply is taken only with the ID sent
 * and the question asked; anything else is dropped and the query waits on.
 */
export class UdpPool {
  readonly #upstream: Upstream;
  readonly #slots: Slot[] = [];
  readonly #size: number;
  readonly #maxUses: number;
  readonly #onDrop: (reason: string) => void;
  readonly #netns: string | undefined;
  readonly #random = new RandomPool();
  /** Replaced sockets still waiting for replies. */
  readonly #retired = new Set<Slot>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor({ upstream, size = 8, maxUses = 1000, onDrop = () => {}, netns }: UdpPoolOptions) {
    this.#upstream = upstream;
    this.#netns = netns;
    this.#size = size;
    this.#maxUses = maxUses;
    this.#onDrop = onDrop;
  }

  /** Sends `q` to the upstream; settles with its reply, or why there is none, within `timeoutMs`. Never rejects. */
  async exchange(q: Query, timeoutMs: number): Promise<UdpOutcome> {
    if (this.#closed) return { reply: null, reason: 'socket', detail: 'pool closed' };
    let slot: Slot;
    try {
      slot = this.#slot();
      if (!slot.ready) await slot.connected;
    } catch (err) {
      // Out of descriptors, or the namespace to ask from is gone: this query fails, the server lives.
      return { reply: null, reason: 'socket', detail: (err as Error).message };
    }
    let id = this.#random.next16();
    while (slot.pending.has(id)) id = this.#random.next16();
    const out = upstreamQuery(q, id);
    return new Promise<UdpOutcome>((resolve) => {
      slot.pending.set(id, { query: q, resolve, expiresAt: performance.now() + timeoutMs });
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS);
      slot.socket.send(out, (err) => {
        if (err === null || err === undefined || slot.pending.get(id)?.resolve !== resolve) return;
        slot.pending.delete(id);
        resolve({ reply: null, reason: 'socket', detail: err.message });
      });
    });
  }

  /** Answers every query past its time; stops itself when nothing waits. */
  #sweep(): void {
    const now = performance.now();
    let waiting = 0;
    for (const slot of [...this.#slots, ...this.#retired]) {
      for (const [id, p] of slot.pending) {
        if (p.expiresAt > now) continue;
        slot.pending.delete(id);
        p.resolve({ reply: null, reason: 'timeout' });
      }
      waiting += slot.pending.size;
      this.#retire(slot);
    }
    if (waiting === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const slot of [...this.#slots, ...this.#retired]) this.#fail(slot, { reply: null, reason: 'socket', detail: 'pool closed' }, true);
    this.#slots.length = 0;
  }

  /** Settles everything waiting on `slot` with `outcome`; with `discard` the socket goes too. */
  #fail(slot: Slot, outcome: UdpOutcome, discard: boolean): void {
    for (const p of slot.pending.values()) p.resolve(outcome);
    slot.pending.clear();
    if (!discard) return;
    const at = this.#slots.indexOf(slot);
    if (at >= 0) this.#slots.splice(at, 1);
    this.#retired.delete(slot);
    try {
      slot.socket.close();
    } catch {
      // already closed
    }
  }

  #slot(): Slot {
    if (this.#slots.length < this.#size) {
      const slot = this.#open();
      this.#slots.push(slot);
      return slot;
    }
    let slot = this.#slots[this.#random.below(this.#slots.length)]!;
    if (slot.uses >= this.#maxUses) {
      const fresh = this.#open();
      this.#slots[this.#slots.indexOf(slot)] = fresh;
      slot.retired = true;
      this.#retired.add(slot);
      this.#retire(slot);
      slot = fresh;
    }
    slot.uses++;
    return slot;
  }

  /** A socket connected to the upstream; throws when none can be made (EMFILE, namespace gone). */
  #open(): Slot {
    const { family, port, address } = this.#upstream;
    const fd = this.#netns === undefined ? undefined : socketInNetns(this.#netns, 'udp', family);
    const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    const slot: Slot = { socket, pending: new Map(), uses: 1, retired: false, ready: false, connected: Promise.resolve() };
    slot.connected = new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => {
        this.#fail(slot, { reply: null, reason: 'socket', detail: err.message }, true);
        reject(new Error(`upstream socket to ${this.#upstream.label}: ${err.message}`, { cause: err }));
      };
      socket.once('error', failed);
      const connect = (): void =>
        socket.connect(port, address, () => {
          socket.off('error', failed);
          // After this, errors are ICMP from the upstream (ECONNREFUSED: nothing listens there).
          socket.on('error', (err) => this.#fail(slot, { reply: null, reason: 'unreachable', detail: err.message }, true));
          slot.ready = true;
          resolve();
        });
      if (fd === undefined) connect();
      else socket.bind({ fd }, connect);
    });
    slot.connected.catch(() => {});
    socket.on('message', (msg) => this.#receive(slot, msg));
    return slot;
  }

  /** Closes a worn-out socket once nothing waits on it. */
  #retire(slot: Slot): void {
    if (slot.retired && slot.pending.size === 0 && this.#retired.delete(slot)) slot.socket.close();
  }

  #receive(slot: Slot, msg: Buffer): void {
    if (msg.length < 12) return this.#onDrop('short');
    const p = slot.pending.get(msg.readUInt16BE(0));
    if (p === undefined) return this.#onDrop('unknown-id');
    if (!(msg.readUInt16BE(2) & 0x8000)) return this.#onDrop('not-a-response');
    const layout = layoutMessage(msg);
    if (
      layout === null ||
      layout.questionName !== p.query.name ||
      layout.questionType !== p.query.type ||
      layout.questionClass !== p.query.qclass ||
      layout.questionEnd !== p.query.questionEnd
    ) {
      return this.#onDrop('wrong-question');
    }
    slot.pending.delete(msg.readUInt16BE(0));
    this.#retire(slot);
    p.resolve({ reply: msg });
  }
}
