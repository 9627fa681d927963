// The echo floor (see echo-server.ts) with batched socket I/O, on the same code as tsnet's batched
// UDP path (src/server/batch/mmsg.ts): a worker thread waits in epoll, reads up to 64 queries with
// one recvmmsg(2) and answers them all with one sendmmsg(2). The main thread only reports the mean
// batch size on SIGTERM/SIGINT.
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { boundUdpFd } from '../src/netns/listen-sockets.js';
import { Batch, Poller } from '../src/server/batch/mmsg.js';

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
  const BATCH = 64;
  const batch = new Batch(BATCH);
  const poller = new Poller(1);
  const fd = boundUdpFd('127.0.0.1', port, 8 * 1024 * 1024);
  poller.add(fd, 0);
  let datagrams = 0;
  let calls = 0;
  while (counters[2] === 0) {
    if (poller.wait(100).length === 0) continue;
    for (let n = BATCH; n === BATCH; ) {
      n = batch.receive(fd);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const q = batch.datagram(i);
        q[2]! |= 0x80;
        batch.queue(i, q);
      }
      batch.flush(fd);
      counters[0] = datagrams += n;
      counters[1] = ++calls;
    }
  }
  poller.close();
}
