// `npm run bench:overload` (R3): dnsperf as fast as it can go at local names (against a server
// measured beforehand) and a flood of unique forwarded names at a slow upstream, for
// BENCH_SECONDS (default 30), while a probe asks a local name 10 times a second. Reports whether
// the server lived, its peak RSS and the probe's answer rate. BENCH_PEER=unbound runs the same
// against unbound (1 thread) for comparison. Loopback only. Both dnsperf runs are closed loops
// (5000 queries outstanding each): a receive queue deep enough to hold them all is what keeps the
// kernel from dropping the probe among them.
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { run, throughput } from './dnsperf.js';
import { unbound } from './peers.js';
import { rssMb, startPinned, stop, waitForDns } from './procs.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const dir = mkdtempSync(join(tmpdir(), 'tsnet-overload-'));
const file = (name: string, lines: string[]): string => {
  writeFileSync(join(dir, name), lines.join('\n') + '\n');
  return join(dir, name);
};

/** An upstream that answers every A query after `delayMs`: slow enough to pile forwarded queries up. */
async function slowUpstream(delayMs: number): Promise<{ port: number; close(): void }> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  s.on('message', (m, r) => {
    try {
      const q = dnsPacket.decode(m);
      const out = dnsPacket.encode({ id: q.id, type: 'response', flags: 0x8180, questions: q.questions, answers: [{ name: q.questions![0]!.name, type: 'A', ttl: 300, data: '127.77.0.1' }] });
      setTimeout(() => s.send(out, r.port, r.address), delayMs);
    } catch {
      // not a query
    }
  });
  return { port: s.address().port, close: () => s.close() };
}

interface ProbeResult {
  answered: number;
  asked: number;
  /** Milliseconds from asking to a good answer, sorted. */
  latencies: number[];
}

/** Asks `web` every 100 ms with a 1 s timeout, until stopped. */
function probe(port: number): { stop(): Promise<ProbeResult> } {
  const s = createSocket('udp4');
  let asked = 0;
  const latencies: number[] = [];
  const waiting = new Map<number, { timer: NodeJS.Timeout; sent: number }>();
  s.on('message', (m) => {
    const id = m.readUInt16BE(0);
    const w = waiting.get(id);
    if (w === undefined) return;
    clearTimeout(w.timer);
    waiting.delete(id);
    if (JSON.stringify(dnsPacket.decode(m).answers ?? []).includes('172.30.0.2')) latencies.push(performance.now() - w.sent);
  });
  const timer = setInterval(() => {
    const id = asked++ % 65536;
    waiting.set(id, { timer: setTimeout(() => waiting.delete(id), 1000), sent: performance.now() });
    s.send(dnsPacket.encode({ id, type: 'query', questions: [{ name: 'web', type: 'A' }] }), port, '127.0.0.1');
  }, 100);
  return {
    stop: async () => {
      clearInterval(timer);
      await new Promise((r) => setTimeout(r, 1100));
      s.close();
      return { answered: latencies.length, asked, latencies: latencies.sort((a, b) => a - b) };
    },
  };
}

const upstream = await slowUpstream(500);
const records = join(dir, 'records.json');
writeFileSync(records, JSON.stringify({ networks: [{ name: 'app', subnet: '172.30.0.0/24' }], endpoints: [{ id: 'a'.repeat(64), name: 'web', networks: { app: { ipv4: '172.30.0.2', aliases: ['www'] } } }] }));
const port = 27000 + Math.floor(Math.random() * 2000);
const peer = process.env.BENCH_PEER;
const server =
  peer === 'unbound'
    ? await unbound({ dir, upstreamPort: upstream.port }, port)
    : { pid: startPinned(0, process.execPath, [join(ROOT, 'bin/tsnet-dns'), '--records', records, '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${upstream.port}`, '--log-level', 'error']).pid };
const alive = (): boolean => {
  try {
    process.kill(server.pid!, 0);
    return true;
  } catch {
    return false;
  }
};
try {
  await waitForDns(port);
  const local = file('local.txt', ['web A', 'www A', 'web AAAA']);
  const unique = file('unique.txt', Array.from({ length: 2_000_000 }, (_, i) => `u${i}.fwd.example A`));
  const capacity = await throughput(port, local, 5);
  const before = rssMb(server.pid!);
  let peak = before;
  const sampler = setInterval(() => alive() && (peak = Math.max(peak, rssMb(server.pid!))), 250);
  const p = probe(port);
  const base = ['-s', '127.0.0.1', '-p', String(port), '-t', '1', '-l', String(SECONDS)];
  const num = (re: RegExp, text: string): number => Number(re.exec(text)?.[1] ?? NaN);
  const [flood, forwarded] = await Promise.all([
    run([...base, '-d', local, '-c', '16', '-q', '5000']),
    run([...base, '-d', unique, '-c', '4', '-q', '5000', '-Q', String(Math.round(capacity.qps))]),
  ]);
  const { answered, asked, latencies } = await p.stop();
  clearInterval(sampler);
  const report = {
    server: peer ?? 'tsnet-dns',
    seconds: SECONDS,
    capacityQps: Math.round(capacity.qps),
    localFloodSentQps: Math.round(num(/Queries sent:\s+(\d+)/, flood) / SECONDS),
    localFloodAnsweredQps: Math.round(num(/Queries per second:\s+([\d.]+)/, flood)),
    forwardedOfferedQps: Math.round(capacity.qps),
    forwardedAnsweredQps: Math.round(num(/Queries per second:\s+([\d.]+)/, forwarded)),
    alive: alive(),
    rssBeforeMb: +before.toFixed(1),
    rssPeakMb: +peak.toFixed(1),
    probeAnsweredPct: +((100 * answered) / asked).toFixed(1),
    probeP50Ms: +(latencies[latencies.length >> 1] ?? NaN).toFixed(1),
    probeMaxMs: +(latencies.at(-1) ?? NaN).toFixed(1),
  };
  console.log(JSON.stringify(report, null, 1));
  if (!report.alive || report.probeAnsweredPct < 99) process.exitCode = 1;
} finally {
  stop(server.pid);
  upstream.close();
  rmSync(dir, { recursive: true, force: true });
}
