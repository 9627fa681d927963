// The echo floor (see echo-server.ts) with batched socket I/O: a worker thread blocks in
// recvmmsg(2) for up to 64 queries and answers them all with one sendmmsg(2), through koffi.
// The main thread only reports the mean batch size on SIGTERM/SIGINT.
import koffi from 'koffi';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { AF_INET, SOCK_DGRAM, SOL_SOCKET, bind, check, close, sockaddrIn, socket } from '../src/netns/libc.js';

/** Shared with the worker: [0] datagrams received, [1] recvmmsg calls that returned some, [2] stop flag. */
interface Shared {
  port: number;
  stats: SharedArrayBuffer;
}

if (isMainThread) {
  const stats = new SharedArrayBuffer(3 * 8);
  const counters = new Float64Array(stats);
  const worker = new Worker(new URL(import.meta.url), { workerData: { port: Number(process.argv[2]), stats } satisfies Shared });
  worker.on('error', (err) => {
    console.error(err);
    process.exit(1);
  });
  const stop = (): void => {
    const [datagrams = 0, calls = 0] = counters;
    console.error(`mmsg-echo: ${datagrams} datagrams in ${calls} recvmmsg calls, mean batch ${(datagrams / Math.max(calls, 1)).toFixed(2)}`);
    counters[2] = 1;
    worker.on('exit', () => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { port, stats } = workerData as Shared;
  const counters = new Float64Array(stats);

  const libc = koffi.load('libc.so.6');
  type MmsgCall = (fd: number, msgvec: bigint, vlen: number, flags: number, timeout: null) => number;
  const recvmmsg = libc.func('int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)') as MmsgCall;
  const sendmmsg = libc.func('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)') as (
    fd: number,
    msgvec: bigint,
    vlen: number,
    flags: number,
  ) => number;
  const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as (
    fd: number,
    level: number,
    name: number,
    value: Buffer,
    len: number,
  ) => number;

  const MSG_WAITFORONE = 0x10000;
  const SO_RCVTIMEO = 20;
  const EAGAIN = 11;
  const EINTR = 4;
  const BATCH = 64;
  const SLOT = 4096; // room for any EDNS-sized query
  const MMSG = 64; // sizeof(struct mmsghdr)
  const IOV = 16; // sizeof(struct iovec)
  const NAME = 16; // sizeof(struct sockaddr_in)

  // One large allocation (off the V8 heap, so never moved) holding every struct and payload.
  const recvVec = 0;
  const sendVec = recvVec + BATCH * MMSG;
  const recvIov = sendVec + BATCH * MMSG;
  const sendIov = recvIov + BATCH * IOV;
  const names = sendIov + BATCH * IOV;
  const data = names + BATCH * NAME;
  const mem = Buffer.alloc(data + BATCH * SLOT);
  const base = koffi.address(mem);
  const at = (offset: number): bigint => base + BigInt(offset);

  for (let i = 0; i < BATCH; i++) {
    // recv and send iovecs point at the same payload; only the send ones carry each reply's length.
    for (const iov of [recvIov, sendIov]) {
      mem.writeBigUInt64LE(at(data + i * SLOT), iov + i * IOV);
      mem.writeBigUInt64LE(BigInt(iov === recvIov ? SLOT : 0), iov + i * IOV + 8);
    }
    for (const [vec, iov] of [
      [recvVec, recvIov],
      [sendVec, sendIov],
    ] as const) {
      const hdr = vec + i * MMSG;
      mem.writeBigUInt64LE(at(names + i * NAME), hdr); // msg_name: the sender, then the reply's destination
      mem.writeUInt32LE(NAME, hdr + 8); // msg_namelen (the kernel rewrites it as 16 for AF_INET)
      mem.writeBigUInt64LE(at(iov + i * IOV), hdr + 16); // msg_iov
      mem.writeBigUInt64LE(1n, hdr + 24); // msg_iovlen
    }
  }

  const fd = check(socket(AF_INET, SOCK_DGRAM, 0) as number, 'socket');
  const addr = sockaddrIn('127.0.0.1', port);
  check(bind(fd, addr, addr.length) as number, `bind 127.0.0.1:${port}`);
  // A blocked recvmmsg cannot see the stop flag, so wake up every 100 ms to look at it.
  const timeout = Buffer.alloc(16);
  timeout.writeBigInt64LE(100_000n, 8);
  check(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length), 'setsockopt SO_RCVTIMEO');

  let datagrams = 0;
  let calls = 0;
  while (counters[2] === 0) {
    const n = recvmmsg(fd, at(recvVec), BATCH, MSG_WAITFORONE, null);
    if (n < 0) {
      const errno = koffi.errno();
      if (errno === EAGAIN || errno === EINTR) continue;
      check(n, 'recvmmsg');
    }
    for (let i = 0; i < n; i++) {
      mem[data + i * SLOT + 2]! |= 0x80;
      mem.writeUInt32LE(mem.readUInt32LE(recvVec + i * MMSG + 56), sendIov + i * IOV + 8);
    }
    for (let sent = 0; sent < n; ) {
      const m = sendmmsg(fd, at(sendVec + sent * MMSG), n - sent, 0);
      sent += m > 0 ? m : 1; // on an error the first message failed: drop it, as a lost reply
    }
    counters[0] = datagrams += n;
    counters[1] = ++calls;
  }
  close(fd);
}
