// `npm run bench:store`: what the store costs (issue 14's benchmark). Root; the host namespaces,
// the etcd cluster and every sandbox it makes are removed, pass or fail.
//
// - change → visible (P5): sandbox `x` of node n1 connected to and disconnected from network
//   `bench`, from the API's answer until the next answer of 127.0.0.11 in a sandbox on n1, and
//   (etcd) on n3, shows the change; with the API call itself beside it.
// - sandbox create + attach, the first 100 and 901–1000 (P6's ratio), on n1.
// - daemon restart with those sandboxes; and (etcd) start with 10k endpoints of another node.
//
// The file store runs one host, etcd three hosts on a 3-member etcd cluster, all in namespaces of
// their own on one LAN bridge (test/helpers/cluster-hosts.ts, as the cluster tests run them).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { call } from '../src/control/client.js';
import { startClusterHosts, type ClusterHost, type ClusterHosts } from '../test/helpers/cluster-hosts.js';
import { nameProbe, type NameProbe } from './name-probe.js';
import { benchOwner } from './owner.js';
import { rssMb } from './procs.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const COUNT = Number(process.env.BENCH_SANDBOXES ?? 1000);
const BULK = Number(process.env.BENCH_ENDPOINTS ?? 10_000);
const STORES = (process.env.BENCH_STORES ?? 'file,etcd').split(',').map((k) => {
  if (k !== 'file' && k !== 'etcd') throw new Error(`BENCH_STORES: ${k} is neither file nor etcd`);
  return k;
});
// Run by tsx from bench/ (it imports the test helpers, which tsc does not build).
const ROOT = new URL('..', import.meta.url).pathname;
// Inside the hosts' own namespaces: no route of the machine's can meet it.
const BASE = '10.199';

const ms = (ns: bigint): number => Number(ns) / 1e6;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const p50p99 = (xs: number[], digits = 2): string => `p50 ${pct(xs, 0.5).toFixed(digits)} ms, p99 ${pct(xs, 0.99).toFixed(digits)} ms`;
const visible = (v: Visible, host: string): string => `${p50p99(v.seen.get(host)!, 3)}; the first query after the answer showed it in ${v.first.get(host)}/${v.api.length}`;
const sandbox = (h: ClusterHost, name: string, network: string): Promise<unknown> => call(h.socket, 'POST', '/sandboxes/create', { name, networks: [{ network }] });

interface Visible {
  api: number[];
  /** Probe host name → ms from the API's answer to the first answer showing the change. */
  seen: Map<string, number[]>;
  /** Probe host name → rounds whose first query after the API's answer already showed it. */
  first: Map<string, number>;
}

/**
 * `rounds` connects (or disconnects) of `x` on `a`, each followed until every probe shows it, and
 * undone untimed. `x` starts disconnected; a disconnect round connects it first.
 */
async function changeToVisible(a: ClusterHost, probes: Map<string, NameProbe>, connect: boolean, rounds: number): Promise<Visible> {
  const out: Visible = { api: [], seen: new Map([...probes.keys()].map((k) => [k, []])), first: new Map([...probes.keys()].map((k) => [k, 0])) };
  const change = async (on: boolean): Promise<void> => void (await call(a.socket, 'POST', `/networks/bench/${on ? 'connect' : 'disconnect'}`, { Container: 'x' }));
  const settled = (on: boolean): Promise<unknown> => Promise.all([...probes.values()].map((p) => p.until('x', on)));
  for (let i = 0; i < rounds; i++) {
    if (!connect) await change(true), await settled(true);
    const t0 = process.hrtime.bigint();
    await change(connect);
    const ack = process.hrtime.bigint();
    out.api.push(ms(ack - t0));
    const seen = await Promise.all([...probes].map(async ([k, p]) => [k, await p.until('x', connect)] as const));
    for (const [k, { at, queries }] of seen) {
      out.seen.get(k)!.push(ms(at - ack));
      if (queries === 1) out.first.set(k, out.first.get(k)! + 1);
    }
    if (connect) await change(false), await settled(false);
  }
  return out;
}

/** Round trips of a query for a name that is there, with nothing changing: what a `seen` time is made of. */
async function idleRoundTrips(probe: NameProbe, name: string, n = 200): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    out.push(ms((await probe.until(name, true)).at - t0));
  }
  return out;
}

async function startTimed(h: ClusterHost, probe: NameProbe, last: string): Promise<{ ping: number; answers: number; rss: number }> {
  const t0 = process.hrtime.bigint();
  await h.start([], 300_000);
  const ping = ms(process.hrtime.bigint() - t0);
  const answers = ms((await probe.until(last, true, 120_000)).at - t0);
  return { ping, answers, rss: rssMb(h.pid()!) };
}

interface StoreWriter {
  /** Sends one bench/store-writer.ts command; resolves with the hrtime of its commit. */
  send(command: string): Promise<bigint>;
  /** Closes its stdin: it leaves the cluster (the lease and its endpoints go) and exits. */
  end(): Promise<void>;
}

/** bench/store-writer.ts inside the LAN, joined as node `bulk`. */
async function storeWriter(c: ClusterHosts): Promise<StoreWriter> {
  const child = spawn('ip', ['netns', 'exec', c.lan, process.execPath, join(ROOT, 'dist/bench/store-writer.js'), c.storeUrl], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: ((line: string) => void)[] = [];
  let failed: Error | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => waiting.shift()?.(line));
  child.once('exit', (code) => {
    failed = new Error(`store-writer exited ${code}`);
    for (const w of waiting.splice(0)) w('');
  });
  const next = (): Promise<string> => new Promise((resolve) => waiting.push(resolve));
  if ((await next()) !== 'ready') throw failed ?? new Error('store-writer did not start');
  return {
    send: async (command) => {
      const answer = next();
      child.stdin!.write(`${command}\n`);
      const line = await answer;
      if (!line.startsWith('ok ')) throw failed ?? new Error(`store-writer: ${command}: ${line}`);
      return BigInt(line.slice(3));
    },
    end: () => new Promise((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.stdin!.end()))),
  };
}

/** Endpoint `y` of node `bulk` written to etcd and deleted, `rounds` times: commit → the first answer on each probe that shows it. */
async function commitToVisible(writer: StoreWriter, network: string, probes: Map<string, NameProbe>, rounds: number): Promise<Map<string, number[]>> {
  const out = new Map([...probes.keys()].flatMap((k) => [[`${k} put`, [] as number[]], [`${k} delete`, [] as number[]]]));
  for (let i = 0; i < rounds; i++) {
    for (const [what, present, command] of [['put', true, `put ${network} y ${BASE}.250.1`], ['delete', false, 'del y']] as const) {
      // The probes ask from before the write, so the first answer that shows it is timed, whenever it comes.
      const seen = [...probes].map(async ([k, p]) => [k, (await p.until('y', present)).at] as const);
      const committed = await writer.send(command);
      for (const [k, at] of await Promise.all(seen)) out.get(`${k} ${what}`)!.push(ms(at - committed));
    }
  }
  return out;
}

async function benchStore(kind: 'file' | 'etcd'): Promise<string[]> {
  const owner = benchOwner(`bench:store ${kind}`);
  try {
    const c = await startClusterHosts(owner, kind === 'file' ? { hosts: 1, store: 'file', leaseTtl: 10 } : { hosts: 3, etcdMembers: 3, leaseTtl: 10 });
    for (const h of c.hosts) await h.start();
    const n1 = c.hosts[0]!;
    const far = c.hosts[c.hosts.length - 1]!;
    await n1.tsnet('network', 'create', '--subnet', `${BASE}.0.0/16`, ...(kind === 'etcd' ? ['--scope', 'swarm'] : []), 'bench');
    await n1.tsnet('network', 'create', 'side');
    await sandbox(n1, 'x', 'side');
    const probes = new Map<string, NameProbe>();
    for (const h of kind === 'file' ? [n1] : [n1, far]) {
      await sandbox(h, `p${h.name}`, 'bench');
      probes.set(h.name, await nameProbe(`${h.netnsPrefix}p${h.name}`));
    }
    const idle = await idleRoundTrips(probes.get('n1')!, 'pn1');
    const on = await changeToVisible(n1, probes, true, ROUNDS);
    const off = await changeToVisible(n1, probes, false, ROUNDS);
    process.stderr.write(`${kind}: change → visible done\n`);

    const create: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      const t0 = performance.now();
      await sandbox(n1, `s${i}`, 'bench');
      create.push(performance.now() - t0);
      if (i % 100 === 99) process.stderr.write(`${kind}: ${i + 1} sandboxes\n`);
    }
    const rssFull = rssMb(n1.pid()!);
    await n1.stop();
    const restart = await startTimed(n1, probes.get('n1')!, `s${COUNT - 1}`);

    const rows = [
      `| ${kind} | a query's round trip to 127.0.0.11 in a sandbox, nothing changing | ${p50p99(idle, 3)} | |`,
      `| ${kind} | connect → next answer on the same node | ${visible(on, 'n1')} | P5: p99 < 1 ms (file store) |`,
      `| ${kind} | disconnect → next answer on the same node | ${visible(off, 'n1')} | |`,
      ...(kind === 'etcd'
        ? [
            `| etcd | connect → next answer on another node | ${visible(on, far.name)} | P5: p99 < 50 ms |`,
            `| etcd | disconnect → next answer on another node | ${visible(off, far.name)} | |`,
          ]
        : []),
      `| ${kind} | the connect / disconnect API call | ${p50p99(on.api, 1)} / ${p50p99(off.api, 1)} | |`,
      `| ${kind} | sandbox create + attach, first 100 | ${p50p99(create.slice(0, 100), 1)} | |`,
      `| ${kind} | the same, sandboxes ${Math.max(1, COUNT - 99)}–${COUNT} | ${p50p99(create.slice(-100), 1)} (p50 ${(pct(create.slice(-100), 0.5) / pct(create.slice(0, 100), 0.5)).toFixed(2)} × the first) | ≤ 1.2 × |`,
      `| ${kind} | daemon RSS with ${COUNT + 2} sandboxes | ${rssFull.toFixed(0)} MB | ≤ 150 MB |`,
      `| ${kind} | restart with them: /_ping, then the last one's name answers | ${(restart.ping / 1000).toFixed(2)} s, ${(restart.answers / 1000).toFixed(2)} s | |`,
    ];
    if (kind === 'etcd') {
      const id = (await call<{ Id: string }>(n1.socket, 'GET', '/networks/bench')).Id;
      const writer = await storeWriter(c);
      const direct = await commitToVisible(writer, id, probes, ROUNDS);
      for (const h of [n1, far]) {
        rows.push(`| etcd | an endpoint of another node put into etcd → the first answer on ${h.name} that has it (from the writer's commit) | ${p50p99(direct.get(`${h.name} put`)!, 3)} | P5: p99 < 50 ms |`);
        rows.push(`| etcd | the same, deleted → the first answer on ${h.name} without it | ${p50p99(direct.get(`${h.name} delete`)!, 3)} | |`);
      }
      await n1.stop();
      await writer.send(`bulk ${id} ${BULK} ${BASE}`);
      const start = await startTimed(n1, probes.get('n1')!, `b${BULK - 1}`);
      // n3 took them live, as events.
      await probes.get(far.name)!.until(`b${BULK - 1}`, true, 60_000);
      rows.push(`| etcd | start with ${BULK} endpoints of another node in the store: /_ping, then the last one's name answers | ${(start.ping / 1000).toFixed(2)} s, ${(start.answers / 1000).toFixed(2)} s (RSS ${start.rss.toFixed(0)} MB) | |`);
      await writer.end();
    }
    for (const p of probes.values()) p.close();
    return rows;
  } finally {
    await owner.done();
  }
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const kind of STORES) rows.push(...(await benchStore(kind)));
  const lines = [
    `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}; ${ROUNDS} changes each way, ${COUNT} sandboxes.`,
    '',
    '| store | measure | result | target |',
    '|---|---|---|---|',
    ...rows,
  ];
  const out = join(ROOT, 'bench/out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'store.md'), lines.join('\n') + '\n');
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
