import { spawn } from 'node:child_process';
import { systemTool } from '../src/net/tools.js';

export interface PerfResult {
  qps: number;
  avgMs: number;
  lostPct: number;
}

export interface LatencyResult {
  p50Ms: number;
  p99Ms: number;
  qps: number;
}

/** dnsperf on CPU 1, in the host namespace or inside `netns`; resolves with its report. */
export function run(args: string[], onLine?: (line: string) => void, netns?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const argv = [...(netns === undefined ? [] : [systemTool('ip'), 'netns', 'exec', netns]), 'taskset', '-c', '1', 'dnsperf', ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let rest = '';
    child.stdout.on('data', (c: Buffer) => {
      if (onLine === undefined) {
        out += c.toString();
        return;
      }
      const lines = (rest + c.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        if (l.startsWith('>')) onLine(l);
        else out += l + '\n';
      }
    });
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`dnsperf exited ${code}: ${out}`))));
  });
}

const num = (re: RegExp, text: string): number => Number(re.exec(text)?.[1] ?? NaN);

const perf = (out: string): PerfResult => ({
  qps: num(/Queries per second:\s+([\d.]+)/, out),
  avgMs: num(/Average Latency \(s\):\s+([\d.]+)/, out) * 1000,
  lostPct: num(/Queries lost:\s+\d+ \(([\d.]+)%\)/, out),
});

/** Throughput: `-c 4 -q 100` for `seconds`, after a warm-up of `warmup` seconds. */
export async function throughput(port: number, file: string, seconds: number, warmup = 2, at: { server?: string; netns?: string } = {}): Promise<PerfResult> {
  const base = ['-s', at.server ?? '127.0.0.1', '-p', String(port), '-d', file, '-c', '4', '-q', '100', '-t', '2'];
  if (warmup > 0) await run([...base, '-l', String(warmup)], undefined, at.netns);
  return perf(await run([...base, '-l', String(seconds)], undefined, at.netns));
}

/** Throughput over the file run through once (`-n 1`), every line asked one time, no warm-up. */
export async function throughputOnce(port: number, file: string): Promise<PerfResult> {
  return perf(await run(['-s', '127.0.0.1', '-p', String(port), '-d', file, '-c', '4', '-q', '100', '-t', '2', '-n', '1']));
}

/** Latency at a fixed load of `qps`: every query's time, from dnsperf -v. */
export async function latencyAt(port: number, file: string, qps: number, seconds: number): Promise<LatencyResult> {
  const times: number[] = [];
  const out = await run(['-s', '127.0.0.1', '-p', String(port), '-d', file, '-c', '4', '-q', '100', '-t', '2', '-Q', String(Math.round(qps)), '-l', String(seconds), '-v'], (line) => {
    const t = Number(line.split(' ').at(-1));
    if (Number.isFinite(t)) times.push(t * 1000);
  });
  times.sort((a, b) => a - b);
  const at = (p: number): number => times[Math.min(times.length - 1, Math.floor(times.length * p))] ?? NaN;
  return { p50Ms: at(0.5), p99Ms: at(0.99), qps: num(/Queries per second:\s+([\d.]+)/, out) };
}
