import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namedNetns } from '../../src/netns/netns.js';
import { familyOf, socketInNetns } from '../../src/netns/socket-in-netns.js';
import { owned, type Owner } from './ledger.js';

const ETCD = '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  /** The running process's pid (a new one after `restart`). */
  readonly pid: number;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on its data dir and ports; resolves once it answers /health. */
  restart(): Promise<void>;
}

export interface TestEtcd {
  endpoints: string[];
  members: EtcdMember[];
  /** The member the others follow (asked of the members still up). */
  leader(): Promise<EtcdMember>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether nothing listens on 127.0.0.1:port right now (etcd may still lose a race for it). */
const portFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

async function freePorts(n: number): Promise<number[]> {
  for (;;) {
    const base = randomInt(20_000, 60_000);
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
}

/**
 * The JSON etcd answers at `url` (a POST of `body`, or a GET), within a second. With `netns` the
 * connection leaves from inside that namespace: the test's own has no route to members there.
 */
function askJson(url: string, netns: string | undefined, body?: string): Promise<unknown> {
  const { hostname, port, pathname } = new URL(url);
  const inside = (): Socket => new Socket({ fd: socketInNetns(namedNetns(netns!), 'tcp', familyOf(hostname)) }).connect({ host: hostname, port: Number(port) });
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: pathname, method: body === undefined ? 'GET' : 'POST', timeout: 1000, ...(netns === undefined ? {} : { createConnection: inside }) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`etcd at ${url}: no answer within 1 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

const healthy = (clientUrl: string, netns: string | undefined): Promise<boolean> =>
  askJson(`${clientUrl}/health`, netns).then(
    (r) => (r as { health?: string }).health === 'true',
    () => false,
  );

/** Member id of the server at `clientUrl` and that of its leader (etcd's JSON gateway). */
async function status(clientUrl: string, netns: string | undefined): Promise<{ id: string; leader: string } | undefined> {
  try {
    const body = (await askJson(`${clientUrl}/v3/maintenance/status`, netns, '{}')) as { header?: { member_id?: string }; leader?: string };
    return body.header?.member_id === undefined || body.leader === undefined ? undefined : { id: body.header.member_id, leader: body.leader };
  } catch {
    return undefined;
  }
}

export interface EtcdOptions {
  /** Members; defaults to one per `hosts` entry, else 1. */
  size?: number;
  /** Runs every member inside this namespace (`ip netns exec`), which the test made and set up. */
  netns?: string;
  /** Member i listens (client and peer) on IPv4 address `hosts[i]`; default 127.0.0.1 for all. */
  hosts?: string[];
}

/**
 * Real etcd (Debian's etcd-server) for one test: `size` members on ports of their own (on
 * loopback, or on `hosts` inside `netns`), data in a fresh temp dir, elections fast. Stopped and
 * removed when the test ends, pass or fail; the leftover check knows the processes by the run's id
 * and the dir by its tag. Without etcd the test fails.
 */
export async function startEtcd(t: Owner, { hosts, netns, size = hosts?.length ?? 1 }: EtcdOptions = {}): Promise<TestEtcd> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} is missing: install etcd-server (.ci/run does)`);
  if (hosts !== undefined && hosts.length < size) throw new Error(`etcd: ${size} members but ${hosts.length} hosts`);
  const tag = `etcd${randomBytes(4).toString('hex')}`;
  owned(t.title, tag);
  const dir = mkdtempSync(join(tmpdir(), `tsnet-${tag}-`));
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    for (const c of children) c.kill('SIGTERM');
    for (let i = 0; i < 30 && [...children].some((c) => c.exitCode === null && c.signalCode === null); i++) await sleep(100);
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 0; ; attempt++) {
    try {
      return await startCluster(dir, tag, size, children, { netns, host: (i) => hosts?.[i] ?? '127.0.0.1' });
    } catch (err) {
      // Another process may have taken a port between the check and etcd's bind: new ports, new try.
      for (const c of children) c.kill('SIGKILL');
      if (attempt === 4 || !String(err).includes('address already in use')) throw err;
    }
  }
}

/** Where the members run: in a namespace or not, and on which address each listens. */
interface Placement {
  netns: string | undefined;
  host(member: number): string;
}

/** One member's process, started by `launch`, with its way to wait for health, kill and restart. */
function member(name: string, clientUrl: string, args: string[], children: Set<ChildProcess>, netns: string | undefined): { member: EtcdMember; launch(): void; ready(): Promise<void> } {
  let child: ChildProcess | undefined;
  let logs = '';
  const launch = (): void => {
    // `ip netns exec` execs etcd: the pid is etcd's own, so kill() reaches it.
    const c = netns === undefined ? spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn('ip', ['netns', 'exec', netns, ETCD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-4000)));
    children.add(c);
    c.once('exit', () => children.delete(c));
    child = c;
  };
  const ready = async (): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (child!.exitCode !== null) throw new Error(`etcd ${name} (${clientUrl}) exited ${child!.exitCode}: ${logs}`);
      if (await healthy(clientUrl, netns)) return;
      await sleep(50);
    }
    throw new Error(`etcd ${name} (${clientUrl}) not healthy within 10 s: ${logs}`);
  };
  const m: EtcdMember = {
    name,
    clientUrl,
    get pid() {
      return child!.pid!;
    },
    kill: async () => {
      const c = child!;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    },
    restart: async () => {
      await m.kill();
      launch();
      await ready();
    },
  };
  return { member: m, launch, ready };
}

async function startCluster(dir: string, tag: string, size: number, children: Set<ChildProcess>, { netns, host }: Placement): Promise<TestEtcd> {
  // Nothing else listens in a namespace the test made: etcd's own ports there, one pair per member.
  const ports = netns === undefined ? await freePorts(2 * size) : Array.from({ length: 2 * size }, (_, i) => 2379 + i);
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peerUrl = (i: number): string => `http://${host(i)}:${ports[2 * i + 1]}`;
  const cluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const members = names.map((name, i) => {
    const clientUrl = `http://${host(i)}:${ports[2 * i]}`;
    return member(name, clientUrl, [
      ...['--name', name, '--data-dir', join(dir, `${name}-${randomBytes(2).toString('hex')}`)],
      ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
      ...['--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i)],
      ...['--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', tag],
      ...['--heartbeat-interval', '50', '--election-timeout', '500'],
      '--experimental-watch-progress-notify-interval=5s',
      ...['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '1h'],
      ...['--logger', 'zap', '--log-level', 'warn'],
    ], children, netns);
  });
  // All members first: none is healthy before a quorum is up.
  for (const m of members) m.launch();
  await Promise.all(members.map((m) => m.ready()));
  const leader = async (): Promise<EtcdMember> => {
    for (let i = 0; i < 100; i++) {
      const all = await Promise.all(members.map(async (m) => ({ m: m.member, s: await status(m.member.clientUrl, netns) })));
      const leaderId = all.find((x) => x.s !== undefined)?.s?.leader;
      const found = all.find((x) => x.s?.id === leaderId);
      if (found !== undefined && leaderId !== '0') return found.m;
      await sleep(100);
    }
    throw new Error('etcd: no leader within 10 s');
  };
  return { endpoints: members.map((m) => m.member.clientUrl), members: members.map((m) => m.member), leader };
}
