// `npm run bench`: tsnet-dns against its peers in one run, per ../shared/reference/targets.md.
// Servers on CPU 0, dnsperf and the upstream on CPU 1; only loopback is used.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { latencyAt, throughput, type PerfResult } from './dnsperf.js';
import { aardvark, batchedEcho, dnsmasq, echo, tsnet, unbound, type PeerContext, type Running } from './peers.js';
import { rssMb } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
type Workload = 'local' | 'cached' | 'unique';

interface Row {
  server: string;
  results: Partial<Record<Workload, PerfResult>>;
  rss: number;
  p50?: number;
  p99?: number;
}

const dir = mkdtempSync(join(tmpdir(), 'tsnet-bench-'));
const file = (name: string, lines: string[]): string => {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
};
const LOCAL_FILE = file('local.txt', ['web A', 'web AAAA', 'www A']);
const CACHED_FILE = file('cached.txt', Array.from({ length: 200 }, (_, i) => `c${i}.fwd.example A`));
const uniqueFile = (tag: string): string => file(`${tag}.txt`, Array.from({ length: 1_000_000 }, (_, i) => `${tag}${i}.fwd.example A`));

let nextPort = 25300 + Math.floor(Math.random() * 2000) * 10;
const port = (): number => nextPort++;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface Contender {
  server: string;
  workloads: Workload[];
  latency: boolean;
  start(p: number): Promise<Running>;
  running?: Running;
  port?: number;
  samples: Partial<Record<Workload, PerfResult[]>>;
}

const median = (xs: PerfResult[]): PerfResult => [...xs].sort((a, b) => a.qps - b.qps)[Math.floor(xs.length / 2)]!;

/**
 * Every server runs for the whole bench; measurements are interleaved round by round and the
 * median round is reported, so that a noisy moment on this shared machine hits all peers alike.
 */
async function main(): Promise<void> {
  const upstreamPort = port();
  const ctx: PeerContext = { dir, upstreamPort };
  const upstream = await dnsmasq(ctx, upstreamPort, { cpu: 1, cache: 0, upstream: true });
  const contenders: Contender[] = [
    { server: 'Node dgram echo (floor)', workloads: ['local'], latency: true, start: echo, samples: {} },
    { server: 'Node batched echo (recvmmsg/sendmmsg)', workloads: ['local'], latency: true, start: batchedEcho, samples: {} },
    { server: 'tsnet-dns', workloads: ['local', 'cached', 'unique'], latency: true, start: (p) => tsnet(ctx, p), samples: {} },
    // What batching buys: the same server on plain dgram sockets, one callback and syscall per datagram.
    { server: 'tsnet-dns, --no-udp-batch', workloads: ['local', 'cached', 'unique'], latency: true, start: (p) => tsnet(ctx, p, [], ['--no-udp-batch']), samples: {} },
    // What V8's young generation costs: 2 MB semi-spaces instead of Node's 16 MB (goal P9, RSS).
    { server: 'tsnet-dns, --max-semi-space-size=2', workloads: ['local', 'cached', 'unique'], latency: false, start: (p) => tsnet(ctx, p, ['--max-semi-space-size=2']), samples: {} },
    { server: 'aardvark-dns 1.4', workloads: ['local'], latency: true, start: (p) => aardvark(ctx, p), samples: {} },
    { server: 'dnsmasq (cache 10000)', workloads: ['local', 'cached'], latency: false, start: (p) => dnsmasq(ctx, p, { cpu: 0, cache: 10_000, upstream: false }), samples: {} },
    { server: 'dnsmasq (no cache)', workloads: ['unique'], latency: false, start: (p) => dnsmasq(ctx, p, { cpu: 0, cache: 0, upstream: false }), samples: {} },
    { server: 'unbound, 1 thread', workloads: ['local', 'cached', 'unique'], latency: true, start: (p) => unbound(ctx, p), samples: {} },
  ];
  const rows: Row[] = [];
  try {
    for (const c of contenders) {
      c.port = port();
      c.running = await c.start(c.port);
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const w of ['local', 'cached', 'unique'] as const) {
        for (const c of contenders.filter((x) => x.workloads.includes(w))) {
          const tag = `${c.server.replace(/\W/g, '')}r${round}`;
          const result =
            w === 'unique'
              ? (await throughput(c.port!, uniqueFile(`w${tag}`), 2, 0), await throughput(c.port!, uniqueFile(`u${tag}`), SECONDS, 0))
              : await throughput(c.port!, w === 'local' ? LOCAL_FILE : CACHED_FILE, SECONDS);
          (c.samples[w] ??= []).push(result);
          process.stderr.write(`round ${round + 1} ${c.server} ${w}: ${Math.round(result.qps)} qps\n`);
        }
      }
    }
    for (const c of contenders) {
      const row: Row = { server: c.server, results: {}, rss: rssMb(c.running!.pid) };
      for (const w of c.workloads) row.results[w] = median(c.samples[w]!);
      if (c.latency) {
        const l = await latencyAt(c.port!, LOCAL_FILE, row.results.local!.qps / 2, 3);
        row.p50 = l.p50Ms;
        row.p99 = l.p99Ms;
      }
      rows.push(row);
    }
  } finally {
    for (const c of contenders) c.running?.stop();
    upstream.stop();
  }
  report(rows);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

function report(rows: Row[]): void {
  const get = (server: string, w: Workload): number => rows.find((r) => r.server.startsWith(server))?.results[w]?.qps ?? NaN;
  const floor = get('Node dgram echo', 'local');
  const k = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '' : `${(n / 1000).toFixed(1)}k`);
  const ms = (n: number | undefined): string => (n === undefined ? '' : n.toFixed(3));
  const tsnetRow = rows.find((r) => r.server === 'tsnet-dns');
  const semi = rows.find((r) => r.server.startsWith('tsnet-dns, --max-semi'));
  const lines = [
    `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}, servers on CPU 0, dnsperf -c 4 -q 100 -l ${SECONDS} on CPU 1 after a 2 s warm-up; median of ${ROUNDS} interleaved rounds. RSS after the run.`,
    '',
    '| server | local qps | × floor | cached qps | unique qps | avg ms (local) | p50 / p99 ms at half load | RSS MB |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) =>
      [
        r.server,
        k(r.results.local?.qps),
        r.results.local === undefined ? '' : (r.results.local.qps / floor).toFixed(2),
        k(r.results.cached?.qps),
        k(r.results.unique?.qps),
        ms(r.results.local?.avgMs),
        r.p50 === undefined ? '' : `${ms(r.p50)} / ${ms(r.p99)}`,
        r.rss.toFixed(1),
      ].join(' | ').replace(/^/, '| ').concat(' |'),
    ),
    '',
    '| goal | measured | target |',
    '|---|---|---|',
    `| P1 local names vs echo floor | ${(get('tsnet', 'local') / floor).toFixed(2)} × (${(get('tsnet', 'local') / get('aardvark', 'local')).toFixed(2)} × aardvark-dns, ${(get('tsnet', 'local') / get('unbound', 'local')).toFixed(2)} × unbound; a batched echo reaches ${(get('Node batched echo', 'local') / floor).toFixed(2)} × the floor) | ≥ 1.0 × (moonshot ≥ 1.0 × unbound) |`,
    `| P2 forwarded, cached vs echo floor | ${(get('tsnet', 'cached') / floor).toFixed(2)} × (${(get('tsnet', 'cached') / get('dnsmasq (cache', 'cached')).toFixed(2)} × dnsmasq with cache) | ≥ 1.0 × |`,
    `| P3 forwarded, unique vs dnsmasq without cache | ${(get('tsnet', 'unique') / get('dnsmasq (no cache', 'unique')).toFixed(2)} × | ≥ 1.2 × |`,
    `| P7 local p99 at half load | ${ms(tsnetRow?.p99)} ms (unbound ${ms(rows.find((r) => r.server.startsWith('unbound'))?.p99)} ms) | < 1 ms |`,
    `| P9 RSS after every workload | ${tsnetRow?.rss.toFixed(0)} MB; with 2 MB semi-spaces ${semi?.rss.toFixed(0)} MB at ${(['local', 'cached', 'unique'] as const).map((w) => ((semi?.results[w]?.qps ?? NaN) / (tsnetRow?.results[w]?.qps ?? NaN)).toFixed(2)).join(' / ')} × the qps (local / cached / unique) | ≤ 80 MB |`,
  ];
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  const out = new URL('./out/', import.meta.url.replace('/dist/bench/', '/bench/')).pathname;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.md'), text);
  writeFileSync(join(out, 'results.json'), JSON.stringify(rows, null, 2));
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
