import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { owned } from './ledger.js';

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

const healthy = (clientUrl: string): Promise<boolean> =>
  fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) }).then(
    async (r) => ((await r.json()) as { health?: string }).health === 'true',
    () => false,
  );

/** Member id of the server at `clientUrl` and that of its leader (etcd's JSON gateway). */
async function status(clientUrl: string): Promise<{ id: string; leader: string } | undefined> {
  try {
    const r = await fetch(`${clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
    const body = (await r.json()) as { header?: { member_id?: string }; leader?: string };
    return body.header?.member_id === undefined || body.leader === undefined ? undefined : { id: body.header.member_id, leader: body.leader };
  } catch {
    return undefined;
  }
}

/**
 * Real etcd (Debian's etcd-server) for one test: `size` members on loopback ports of their own,
 * data in a fresh temp dir, elections fast. Stopped and removed when the test ends, pass or fail;
 * the leftover check knows the processes by the run's id and the dir by its tag. Without etcd the
 * test fails.
 */
export async function startEtcd(t: ExecutionContext, { size = 1 }: { size?: number } = {}): Promise<TestEtcd> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} is missing: install etcd-server (.ci/run does)`);
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
      return await startCluster(dir, tag, size, children);
    } catch (err) {
      // Another process may have taken a port between the check and etcd's bind: new ports, new try.
      for (const c of children) c.kill('SIGKILL');
      if (attempt === 4 || !String(err).includes('address already in use')) throw err;
    }
  }
}

/** One member's process, started by `launch`, with its way to wait for health, kill and restart. */
function member(name: string, clientUrl: string, args: string[], children: Set<ChildProcess>): { member: EtcdMember; launch(): void; ready(): Promise<void> } {
  let child: ChildProcess | undefined;
  let logs = '';
  const launch = (): void => {
    const c = spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-4000)));
    children.add(c);
    c.once('exit', () => children.delete(c));
    child = c;
  };
  const ready = async (): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (child!.exitCode !== null) throw new Error(`etcd ${name} (${clientUrl}) exited ${child!.exitCode}: ${logs}`);
      if (await healthy(clientUrl)) return;
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

async function startCluster(dir: string, tag: string, size: number, children: Set<ChildProcess>): Promise<TestEtcd> {
  const ports = await freePorts(2 * size);
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const cluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const members = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[2 * i]}`;
    return member(name, clientUrl, [
      ...['--name', name, '--data-dir', join(dir, `${name}-${randomBytes(2).toString('hex')}`)],
      ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
      ...['--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i)],
      ...['--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', tag],
      ...['--heartbeat-interval', '50', '--election-timeout', '500'],
      '--experimental-watch-progress-notify-interval=5s',
      ...['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '1h'],
      ...['--logger', 'zap', '--log-level', 'warn'],
    ], children);
  });
  // All members first: none is healthy before a quorum is up.
  for (const m of members) m.launch();
  await Promise.all(members.map((m) => m.ready()));
  const leader = async (): Promise<EtcdMember> => {
    for (let i = 0; i < 100; i++) {
      const all = await Promise.all(members.map(async (m) => ({ m: m.member, s: await status(m.member.clientUrl) })));
      const leaderId = all.find((x) => x.s !== undefined)?.s?.leader;
      const found = all.find((x) => x.s?.id === leaderId);
      if (found !== undefined && leaderId !== '0') return found.m;
      await sleep(100);
    }
    throw new Error('etcd: no leader within 10 s');
  };
  return { endpoints: members.map((m) => m.member.clientUrl), members: members.map((m) => m.member), leader };
}
