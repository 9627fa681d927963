// `npm run bench:scale` (P4): tsnet-dns with 100k endpoints in 1000 networks against the same
// server with 10 endpoints, in one run. Server on CPU 0, dnsperf on CPU 1, loopback only.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { throughput, throughputOnce, type PerfResult } from './dnsperf.js';
import { rssMb, startPinned, stop, waitForDns } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 100_000);
const NETWORKS = Number(process.env.BENCH_NETWORKS ?? 1000);
const ROOT = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tsnet-scale-'));
let nextPort = 27300 + Math.floor(Math.random() * 2000) * 4;

/** `count` endpoints spread over `networks` networks: endpoint i is `c<i>` (alias `a<i>`) on network `n<i % networks>`. */
function recordsFile(tag: string, count: number, networks: number): string {
  const nets = Array.from({ length: networks }, (_, j) => ({ name: `n${j}`, subnet: `10.${j >> 8}.${j & 255}.0/24`, ipv6Subnet: `fd00:${j.toString(16)}::/64` }));
  const perNet = Math.ceil(count / networks);
  if (perNet > 250) throw new Error(`bench: ${perNet} endpoints per /24 network do not fit`);
  const endpoints = Array.from({ length: count }, (_, i) => {
    const j = i % networks;
    const k = Math.floor(i / networks) + 2;
    return {
      id: i.toString(16).padStart(12, '0').padEnd(64, 'e'),
      name: `c${i}`,
      networks: { [`n${j}`]: { ipv4: `10.${j >> 8}.${j & 255}.${k}`, ipv6: `fd00:${j.toString(16)}::${k.toString(16)}`, aliases: [`a${i}`] } },
    };
  });
  const path = join(dir, `${tag}.json`);
  writeFileSync(path, JSON.stringify({ networks: nets, endpoints }));
  return path;
}

const queryFile = (tag: string, lines: string[]): string => {
  const path = join(dir, `${tag}.txt`);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
};

interface Case {
  label: string;
  start: number[];
  rssStarted: number;
  rssAfter: number;
  replayed: PerfResult;
  first: PerfResult;
  /** Every name asked once, replay on: what a sandbox's first lookups cost (large case only). */
  distinct?: PerfResult;
}

/** Starts tsnet-dns on `records` (replay cache on, or off with `--replay-size 0`) and waits for `lastName`. */
async function start(records: string, lastName: string, replay: boolean): Promise<{ pid: number; port: number; ms: number }> {
  const port = nextPort++;
  const args = [join(ROOT, 'bin/tsnet-dns'), '--records', records, '--no-watch', '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', '--log-level', 'warn'];
  if (!replay) args.push('--replay-size', '0');
  const t0 = performance.now();
  const pid = startPinned(0, process.execPath, args).pid;
  if (pid === undefined) throw new Error('bench: tsnet-dns did not start');
  // Up once the last name has a record (ANCOUNT > 0), not at the first reply.
  await waitForDns(port, 60_000, lastName, (reply) => reply.readUInt16BE(6) > 0);
  return { pid, port, ms: performance.now() - t0 };
}

/** 200 names of the case, spread over its networks, A and AAAA, asked again and again. */
const spread = (count: number): string[] => Array.from({ length: 200 }, (_, i) => `c${Math.floor((i * count) / 200)} ${i % 2 === 0 ? 'A' : 'AAAA'}`);

async function measure(label: string, count: number, networks: number): Promise<Case> {
  const records = recordsFile(label, count, networks);
  const last = `c${count - 1}`;
  const names = queryFile(`${label}-spread`, spread(count));
  const starts: number[] = [];
  const on = await start(records, last, true);
  starts.push(on.ms);
  const rssStarted = rssMb(on.pid);
  const replayed = await throughput(on.port, names, SECONDS);
  let distinct: PerfResult | undefined;
  if (count >= 10_000) {
    // Each name once (c, c.n, a, a.n; A): no replay can help; dnsperf runs through the file once.
    const lines = Array.from({ length: count }, (_, i) => [`c${i} A`, `a${i}.n${i % networks} A`]).flat();
    distinct = await throughputOnce(on.port, queryFile(`${label}-distinct`, lines));
  }
  const rssAfter = rssMb(on.pid);
  stop(on.pid);
  const off = await start(records, last, false);
  starts.push(off.ms);
  const first = await throughput(off.port, names, SECONDS);
  stop(off.pid);
  return { label, start: starts, rssStarted, rssAfter, replayed, first, ...(distinct === undefined ? {} : { distinct }) };
}

function report(small: Case, large: Case): string {
  const k = (n: number): string => `${(n / 1000).toFixed(1)}k`;
  const us = (c: Case): number => 1e6 / c.first.qps - 1e6 / c.replayed.qps;
  const row = (c: Case): string =>
    `| ${c.label} | ${Math.min(...c.start).toFixed(0)} | ${k(c.replayed.qps)} | ${k(c.first.qps)} | ${c.distinct === undefined ? '' : k(c.distinct.qps)} | ${us(c).toFixed(1)} | ${c.rssStarted.toFixed(0)} / ${c.rssAfter.toFixed(0)} |`;
  return [
    `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}: tsnet-dns on CPU 0, dnsperf -c 4 -q 100 -l ${SECONDS} on CPU 1 after a 2 s warm-up, from loopback (the scope of every network).`,
    'Replayed: 200 names (A, AAAA) asked again and again. First answers: the same names with the replay cache off (`--replay-size 0`), so every one takes the resolver chain.',
    'The cost of a first answer over a replayed one is 1/qps(first) − 1/qps(replayed), the server being single-threaded on its core.',
    '',
    '| case | start ms (to the last name) | replayed qps | first-answer qps | every name once qps | first answer +µs | RSS MB started / after |',
    '|---|---|---|---|---|---|---|',
    row(small),
    row(large),
    '',
    '| goal (P4) | measured | target |',
    '|---|---|---|',
    `| replayed qps, large / small | ${(large.replayed.qps / small.replayed.qps).toFixed(2)} × | ≥ 0.9 × |`,
    `| first-answer qps, large / small | ${(large.first.qps / small.first.qps).toFixed(2)} × | ≥ 0.9 × |`,
    `| first answer over a replayed one, large | +${us(large).toFixed(1)} µs | ≤ +50 µs |`,
    `| start, large | ${(Math.min(...large.start) / 1000).toFixed(2)} s (small ${(Math.min(...small.start) / 1000).toFixed(2)} s) | ≤ 2 s |`,
    `| RSS, large | ${large.rssAfter.toFixed(0)} MB | ≤ 150 MB |`,
  ].join('\n') + '\n';
}

async function main(): Promise<void> {
  const small = await measure('10 endpoints, 1 network', 10, 1);
  const large = await measure(`${ENDPOINTS / 1000}k endpoints, ${NETWORKS} networks`, ENDPOINTS, NETWORKS);
  const text = report(small, large);
  process.stdout.write(text);
  const out = join(ROOT, 'bench/out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'scale.md'), text);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
