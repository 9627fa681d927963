import koffi from 'koffi';

/**
 * recvmmsg(2), sendmmsg(2) and epoll(7) through koffi, and the memory they work on: one
 * allocation off the V8 heap (never moved) holding the message headers, iovecs, addresses and
 * payloads of one batch. A datagram's slot keeps its sender's address, so a reply in the same
 * slot goes back to it.
 */
const libc = koffi.load('libc.so.6');
type Fn<A extends unknown[]> = (...args: A) => number;
const recvmmsg = libc.func('int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)') as Fn<[number, bigint, number, number, null]>;
const sendmmsg = libc.func('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)') as Fn<[number, bigint, number, number]>;
const epollCreate1 = libc.func('int epoll_create1(int flags)') as Fn<[number]>;
const epollCtl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as Fn<[number, number, number, Buffer]>;
const epollWait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as Fn<[number, bigint, number, number]>;
const closeFd = libc.func('int close(int fd)') as Fn<[number]>;
const eventfd = libc.func('int eventfd(unsigned int initval, int flags)') as Fn<[number, number]>;
const write = libc.func('long write(int fd, const uint8_t *buf, unsigned long count)') as Fn<[number, Buffer, number]>;
const read = libc.func('long read(int fd, _Out_ uint8_t *buf, unsigned long count)') as Fn<[number, Buffer, number]>;
const getsockname = libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)') as Fn<[number, Buffer, Uint32Array]>;

export const errno = (): number => koffi.errno();
export const EAGAIN = 11;
export const EINTR = 4;
const MSG_DONTWAIT = 0x40;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 1;

/** Room for any query a resolver takes over UDP (EDNS allows up to 64 KiB; more is truncated by the kernel). */
export const SLOT = 4096;
const MMSG = 64; // struct mmsghdr
const IOV = 16; // struct iovec
const NAME = 28; // struct sockaddr_in6, which holds a sockaddr_in too
const EVENT = 12; // struct epoll_event (packed on x86-64)

/** A batch of up to `size` datagrams: received into slots, answered from the same slots. */
export class Batch {
  readonly mem: Buffer;
  readonly #base: bigint;
  readonly #recvVec = 0;
  readonly #sendVec: number;
  readonly #recvIov: number;
  readonly #sendIov: number;
  readonly #names: number;
  readonly #data: number;
  /** How many replies are queued in the send vector. */
  #queued = 0;

  constructor(readonly size: number) {
    this.#sendVec = this.#recvVec + size * MMSG;
    this.#recvIov = this.#sendVec + size * MMSG;
    this.#sendIov = this.#recvIov + size * IOV;
    this.#names = this.#sendIov + size * IOV;
    this.#data = this.#names + size * NAME;
    this.mem = Buffer.alloc(this.#data + size * SLOT);
    this.#base = koffi.address(this.mem) as bigint;
    for (let i = 0; i < size; i++) {
      this.mem.writeBigUInt64LE(this.#at(this.#data + i * SLOT), this.#recvIov + i * IOV);
      this.mem.writeBigUInt64LE(BigInt(SLOT), this.#recvIov + i * IOV + 8);
      const hdr = this.#recvVec + i * MMSG;
      this.mem.writeBigUInt64LE(this.#at(this.#names + i * NAME), hdr);
      this.mem.writeBigUInt64LE(this.#at(this.#recvIov + i * IOV), hdr + 16);
      this.mem.writeBigUInt64LE(1n, hdr + 24);
      const out = this.#sendVec + i * MMSG;
      this.mem.writeBigUInt64LE(this.#at(this.#sendIov + i * IOV), out + 16);
      this.mem.writeBigUInt64LE(1n, out + 24);
    }
  }

  #at(offset: number): bigint {
    return this.#base + BigInt(offset);
  }

  /** Reads what `fd` has queued, up to the batch size, without waiting: how many, or -errno. */
  receive(fd: number): number {
    for (let i = 0; i < this.size; i++) this.mem.writeUInt32LE(NAME, this.#recvVec + i * MMSG + 8);
    const n = recvmmsg(fd, this.#at(this.#recvVec), this.size, MSG_DONTWAIT, null);
    return n < 0 ? -errno() : n;
  }

  /** Datagram `i` as received (a view into the slot: copy what must outlive the batch). */
  datagram(i: number): Buffer {
    const length = this.mem.readUInt32LE(this.#recvVec + i * MMSG + 56);
    return this.mem.subarray(this.#data + i * SLOT, this.#data + i * SLOT + Math.min(length, SLOT));
  }

  /** The sender of datagram `i`, as its raw sockaddr bytes (family, port, address). */
  sender(i: number): Buffer {
    return this.mem.subarray(this.#names + i * NAME, this.#names + (i + 1) * NAME);
  }

  /** Queues `reply` to the sender of datagram `i`, written into its slot (the query is read by now). */
  queue(i: number, reply: Buffer): void {
    const length = Math.min(reply.length, SLOT);
    reply.copy(this.mem, this.#data + i * SLOT, 0, length);
    const out = this.#sendVec + this.#queued * MMSG;
    this.mem.writeBigUInt64LE(this.#at(this.#names + i * NAME), out);
    this.mem.writeUInt32LE(this.mem.readUInt32LE(this.#recvVec + i * MMSG + 8), out + 8);
    const iov = this.#sendIov + this.#queued * IOV;
    this.mem.writeBigUInt64LE(this.#at(this.#data + i * SLOT), iov);
    this.mem.writeBigUInt64LE(BigInt(length), iov + 8);
    this.#queued++;
  }

  /** Queues `reply` to `sa` (a raw sockaddr) in the next free slot: replies that were never this batch's queries. */
  queueTo(sa: Buffer, reply: Buffer): void {
    const i = this.#queued;
    sa.copy(this.mem, this.#names + i * NAME, 0, Math.min(sa.length, NAME));
    this.mem.writeUInt32LE(Math.min(sa.length, NAME), this.#recvVec + i * MMSG + 8);
    this.queue(i, reply);
  }

  /** Whether the send vector has room for another reply. */
  get full(): boolean {
    return this.#queued === this.size;
  }

  /** Sends every queued reply on `fd` in as few calls as the kernel takes. */
  flush(fd: number): void {
    for (let sent = 0; sent < this.#queued; ) {
      const m = sendmmsg(fd, this.#at(this.#sendVec + sent * MMSG), this.#queued - sent, MSG_DONTWAIT);
      // An error is the first message's (a full send queue): that reply is lost, as a datagram may be.
      sent += m > 0 ? m : 1;
    }
    this.#queued = 0;
  }
}

/** An epoll set: fds in, with a number each that the wait gives back. */
export class Poller {
  readonly #ep: number;
  readonly #events: Buffer;
  readonly #base: bigint;

  constructor(readonly max: number) {
    this.#ep = epollCreate1(EPOLL_CLOEXEC);
    if (this.#ep < 0) throw new Error(`epoll_create1: errno ${errno()}`);
    this.#events = Buffer.alloc(max * EVENT);
    this.#base = koffi.address(this.#events) as bigint;
  }

  add(fd: number, tag: number): void {
    const ev = Buffer.alloc(EVENT);
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeBigUInt64LE(BigInt(tag), 4);
    if (epollCtl(this.#ep, EPOLL_CTL_ADD, fd, ev) < 0) throw new Error(`epoll_ctl add fd ${fd}: errno ${errno()}`);
  }

  remove(fd: number): void {
    epollCtl(this.#ep, EPOLL_CTL_DEL, fd, Buffer.alloc(EVENT));
  }

  /** Waits up to `ms` for readable fds; returns their tags. */
  wait(ms: number): number[] {
    const n = epollWait(this.#ep, this.#base, this.max, ms);
    const tags: number[] = [];
    for (let i = 0; i < n; i++) tags.push(Number(this.#events.readBigUInt64LE(i * EVENT + 4)));
    return tags;
  }

  close(): void {
    closeFd(this.#ep);
  }
}

/** An eventfd: a thread waiting in epoll on it wakes when another calls `wake`. */
export class Wakeup {
  readonly fd: number;
  readonly #one = Buffer.alloc(8);

  constructor(fd?: number) {
    this.#one.writeBigUInt64LE(1n);
    this.fd = fd ?? eventfd(0, 0o4000 | 0o2000000);
    if (this.fd < 0) throw new Error(`eventfd: errno ${errno()}`);
  }

  wake(): void {
    write(this.fd, this.#one, 8);
  }

  /** Takes the wake-ups so far, so that the next wait blocks again. */
  drain(): void {
    read(this.fd, Buffer.alloc(8), 8);
  }

  close(): void {
    closeFd(this.fd);
  }
}

/** The text address and port in a raw sockaddr, written as inet_ntop(3) (and Node's rinfo) writes them. */
export function addressOf(sa: Buffer): { address: string; port: number } {
  const port = sa.readUInt16BE(2);
  if (sa.readUInt16LE(0) === 2) return { address: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port };
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(sa.readUInt16BE(8 + i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return { address: `::ffff:${sa[20]}.${sa[21]}.${sa[22]}.${sa[23]}`, port };
  // RFC 5952: the longest run of two or more zero groups (the first of equals) becomes '::'.
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) (best = i), (bestLength = j - i);
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  const address = best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
  return { address, port };
}

/** The port a bound socket has (the one the kernel picked for port 0). */
export function boundPort(fd: number): number {
  const sa = Buffer.alloc(NAME);
  if (getsockname(fd, sa, Uint32Array.of(NAME)) < 0) throw new Error(`getsockname fd ${fd}: errno ${errno()}`);
  return sa.readUInt16BE(2);
}
