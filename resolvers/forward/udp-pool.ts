import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Upstream } from '../../src/server/upstreams.js';
import { layoutMessage } from '../../src/wire/layout.js';
import type { Query } from '../../src/wire/query.js';

interface Pending {
  upstream: Upstream;
  query: Query;
  resolve(reply: Buffer | null): void;
  timer: NodeJS.Timeout;
}

interface Slot {
  socket: Socket;
  pending: Map<number, Pending>;
  uses: number;
  /** Replaced by a fresh socket: closed as soon as its last reply is in. */
  retired: boolean;
  ready: Promise<void>;
}

export interface UdpPoolOptions {
  /** Sockets per address family; each is bound to its own kernel-chosen (random) port. */
  size?: number;
  /** A socket is replaced by one on a fresh port after this many queries. */
  maxUses?: number;
  /** Called for every reply that is dropped, with the reason. */
  onDrop?(reason: string): void;
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
  #closed = false;

  constructor({ size = 16, maxUses = 2000, onDrop = () => {} }: UdpPoolOptions = {}) {
    this.#size = size;
    this.#maxUses = maxUses;
    this.#onDrop = onDrop;
  }

  /** Sends `q` to `upstream`; resolves with the reply, or null when `timeoutMs` passes first. */
  async exchange(upstream: Upstream, q: Query, timeoutMs: number): Promise<Buffer | null> {
    if (this.#closed) return null;
    const slot = this.#slot(isIPv6(upstream.address) ? 6 : 4);
    await slot.ready;
    let id = randomInt(0x10000);
    while (slot.pending.has(id)) id = randomInt(0x10000);
    const out = Buffer.from(q.raw);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        this.#retire(slot);
        resolve(null);
      }, timeoutMs);
      slot.pending.set(id, { upstream, query: q, resolve, timer });
      slot.socket.send(out, upstream.port, upstream.address, (err) => {
        if (err === null || err === undefined) return;
        clearTimeout(timer);
        slot.pending.delete(id);
        resolve(null);
      });
    });
  }

  close(): void {
    this.#closed = true;
    for (const slot of [...this.#slots[4], ...this.#slots[6]]) {
      for (const p of slot.pending.values()) {
        clearTimeout(p.timer);
        p.resolve(null);
      }
      slot.socket.close();
    }
  }

  #slot(family: 4 | 6): Slot {
    const slots = this.#slots[family];
    if (slots.length < this.#size) {
      const slot = this.#open(family);
      slots.push(slot);
      return slot;
    }
    let slot = slots[randomInt(slots.length)]!;
    if (slot.uses >= this.#maxUses) {
      const fresh = this.#open(family);
      slots[slots.indexOf(slot)] = fresh;
      slot.retired = true;
      this.#retire(slot);
      slot = fresh;
    }
    slot.uses++;
    return slot;
  }

  #open(family: 4 | 6): Slot {
    const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    const slot: Slot = {
      socket,
      pending: new Map(),
      uses: 1,
      retired: false,
      ready: new Promise((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, family === 4 ? '0.0.0.0' : '::', () => {
          socket.off('error', reject);
          resolve();
        });
      }),
    };
    slot.ready.catch(() => {});
    socket.on('error', () => {}); // send errors are reported to each send's callback
    socket.on('message', (msg, rinfo) => this.#receive(slot, msg, rinfo.address, rinfo.port));
    return slot;
  }

  /** Closes a worn-out socket once nothing waits on it. */
  #retire(slot: Slot): void {
    if (slot.retired && slot.pending.size === 0) slot.socket.close();
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
    clearTimeout(p.timer);
    slot.pending.delete(msg.readUInt16BE(0));
    this.#retire(slot);
    p.resolve(msg);
  }
}
