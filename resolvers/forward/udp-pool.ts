import { createSocket, type Socket } from 'node:dgram';
import type { Upstream } from '../../src/server/upstreams.js';
import { layoutMessage } from '../../src/wire/layout.js';
import type { Query } from '../../src/wire/query.js';
import { RandomPool } from './random.js';
import { socketInNetns } from '../../src/netns/socket-in-netns.js';

interface Pending {
  upstream: Upstream;
  query: Query;
  resolve(reply: Buffer | null): void;
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
  /** Resolved once bound; `bound` spares a microtask on every query after that. */
  ready: Promise<void>;
  bound: boolean;
}

export interface UdpPoolOptions {
  /** Sockets per address family; each is bound to its own kernel-chosen (random) port. */
  size?: number;
  /** A socket is replaced by one on a fresh port after this many queries. */
  maxUses?: number;
  /** Called for every reply that is dropped, with the reason. */
  onDrop?(reason: string): void;
  /** Open the sockets inside this network namespace. */
  netns?: string;
}

/**
 * Upstream UDP sockets. Each query goes out on a random socket of the pool, with a random ID
 * unused on that socket; sockets move to fresh random ports as they wear out, so an attacker
 * must guess both the ID and the port. A reply is accepted only from the upstream asked, with
 * the ID sent and the question asked (RFC 5452); anything else is dropped.
 */
export class UdpPool {
  readonly #slots: { 4: Slot[]; 6: Slot[] } = { 4: [], 6: [] };
  readonly #size: number;
  readonly #maxUses: number;
  readonly #onDrop: (reason: string) => void;
  readonly #netns: string | undefined;
  readonly #random = new RandomPool();
  /** Replaced sockets still waiting for replies. */
  readonly #retired = new Set<Slot>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor({ size = 16, maxUses = 2000, onDrop = () => {}, netns }: UdpPoolOptions = {}) {
    this.#netns = netns;
    this.#size = size;
    this.#maxUses = maxUses;
    this.#onDrop = onDrop;
  }

  /** Sends `q` to `upstream`; resolves with the reply, or null when `timeoutMs` passes first. */
  async exchange(upstream: Upstream, q: Query, timeoutMs: number): Promise<Buffer | null> {
    if (this.#closed) return null;
    const slot = this.#slot(upstream.family);
    if (!slot.bound) await slot.ready;
    let id = this.#random.next16();
    while (slot.pending.has(id)) id = this.#random.next16();
    const out = Buffer.from(q.raw);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer | null>((resolve) => {
      slot.pending.set(id, { upstream, query: q, resolve, expiresAt: performance.now() + timeoutMs });
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS);
      slot.socket.send(out, upstream.port, upstream.address, (err) => {
        if (err === null || err === undefined || slot.pending.get(id)?.resolve !== resolve) return;
        slot.pending.delete(id);
        resolve(null);
      });
    });
  }

  /** Answers null to every query past its time; stops itself when nothing waits. */
  #sweep(): void {
    const now = performance.now();
    let waiting = 0;
    for (const slot of [...this.#slots[4], ...this.#slots[6], ...this.#retired]) {
      for (const [id, p] of slot.pending) {
        if (p.expiresAt > now) continue;
        slot.pending.delete(id);
        p.resolve(null);
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
    for (const slot of [...this.#slots[4], ...this.#slots[6], ...this.#retired]) {
      for (const p of slot.pending.values()) p.resolve(null);
      slot.pending.clear();
      this.#retire(slot);
      if (!slot.retired) slot.socket.close();
    }
  }

  #slot(family: 4 | 6): Slot {
    const slots = this.#slots[family];
    if (slots.length < this.#size) {
      const slot = this.#open(family);
      slots.push(slot);
      return slot;
    }
    let slot = slots[this.#random.below(slots.length)]!;
    if (slot.uses >= this.#maxUses) {
      const fresh = this.#open(family);
      slots[slots.indexOf(slot)] = fresh;
      slot.retired = true;
      this.#retired.add(slot);
      this.#retire(slot);
      slot = fresh;
    }
    slot.uses++;
    return slot;
  }

  #open(family: 4 | 6): Slot {
    const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    const slot: Slot = { socket, pending: new Map(), uses: 1, retired: false, bound: false, ready: Promise.resolve() };
    // Built after `slot` exists: adopting an fd reports 'listening' synchronously.
    slot.ready = new Promise((resolve, reject) => {
      socket.once('error', reject);
      const where = this.#netns === undefined ? { port: 0, address: family === 4 ? '0.0.0.0' : '::' } : { fd: socketInNetns(this.#netns, 'udp', family) };
      socket.bind(where, () => {
        socket.off('error', reject);
        slot.bound = true;
        resolve();
      });
    });
    slot.ready.catch(() => {});
    socket.on('error', () => {}); // send errors are reported to each send's callback
    socket.on('message', (msg, rinfo) => this.#receive(slot, msg, rinfo.address, rinfo.port));
    return slot;
  }

  /** Closes a worn-out socket once nothing waits on it. */
  #retire(slot: Slot): void {
    if (slot.retired && slot.pending.size === 0 && this.#retired.delete(slot)) slot.socket.close();
  }

  #receive(slot: Slot, msg: Buffer, address: string, port: number): void {
    if (msg.length < 12) return this.#onDrop('short');
    const p = slot.pending.get(msg.readUInt16BE(0));
    if (p === undefined) return this.#onDrop('unknown-id');
    if (address !== p.upstream.address || port !== p.upstream.port) return this.#onDrop('wrong-source');
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
    p.resolve(msg);
  }
}
