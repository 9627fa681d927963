import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { editSavedState, readSavedState } from '../../src/daemon/saved-state.js';
import { ownerMark, type DaemonState } from '../../src/daemon/state.js';
import { systemTool } from '../../src/net/tools.js';
import { owned } from './ledger.js';

const run = promisify(execFile);

/** Whether a daemon answers GET /_ping on `socket`. */
export const answersPing = (socket: string): Promise<boolean> =>
  new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
export const BIN = new URL('../../bin/tsnet', import.meta.url).pathname;

/**
 * Resolves once the daemon `child` answers on `socket`, not when the socket file appears (it is
 * made before the daemon is set up); rejects with what it wrote to stderr if it exits or never answers.
 */
export async function untilAnswers(child: ChildProcess, socket: string, stderr: () => string, timeoutMs = 10_000): Promise<void> {
  for (let i = 0; i < timeoutMs / 50 && !(await answersPing(socket)); i++) {
    if (child.exitCode !== null) throw new Error(`tsnet daemon exited ${child.exitCode}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!(await answersPing(socket))) throw new Error(`tsnet daemon did not answer on ${socket}: ${stderr()}`);
}

/** The CLI of the daemon on `socket`, run from the test's namespace. */
export function tsnetCli(socket: string): Pick<TestDaemon, 'tsnet' | 'fails'> {
  const tsnet = async (...args: string[]): Promise<string> => (await run(process.execPath, [BIN, '--socket', socket, ...args], { timeout: 20_000 })).stdout;
  return {
    tsnet,
    fails: async (...args) => {
      try {
        await tsnet(...args);
      } catch (err) {
        const e = err as { code: number; stderr: string };
        return { code: e.code, stderr: e.stderr };
      }
      throw new Error(`tsnet ${args.join(' ')} succeeded`);
    },
  };
}

/** Deletes namespace `ns` and its sandbox files (/etc/netns/NS), killing what runs in it first. */
export async function removeNetns(ns: string): Promise<void> {
  // Processes a test left in the namespace (replicas, servers) go first, or the namespace lingers.
  const pids = await run('ip', ['netns', 'pids', ns]).then((r) => r.stdout.split('\n').filter(Boolean), () => []);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run('ip', ['netns', 'del', ns]).catch(() => run('umount', [`/run/netns/${ns}`]).then(() => rmSync(`/run/netns/${ns}`, { force: true }), () => {}));
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

/** Removes every namespace whose name starts with `prefix`, and the sandbox files of any such name. */
export async function removeNetnsStartingWith(prefix: string): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const ns of stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(prefix))) await removeNetns(ns);
  // Sandbox files of namespaces a test deleted under the daemon are not in `ip netns list`.
  for (const ns of existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith(prefix)) : []) {
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}

export interface TestDaemon {
  socket: string;
  /** What the daemon has logged (JSON lines, warn and above). */
  logs(): string;
  /** The daemon's state directory. */
  stateDir: string;
  /** What its stores hold now (read without writing). */
  saved(): Promise<DaemonState>;
  /** Rewrites what a stopped daemon's stores hold, as a crash between kernel and store would leave them. */
  editSaved(edit: (state: DaemonState) => DaemonState): Promise<void>;
  tag: string;
  netnsPrefix: string;
  /** A /24 for this test's own user-defined network, unlikely to meet another run's. */
  subnet(): string;
  /** Runs `tsnet --socket … ARGS`; rejects with stderr on a non-zero exit. */
  tsnet(...args: string[]): Promise<string>;
  /** Runs it and returns exit code and stderr, for commands expected to fail. */
  fails(...args: string[]): Promise<{ code: number; stderr: string }>;
  kill9(): Promise<void>;
  start(): Promise<void>;
}

/**
 * A tsnet daemon with names of its own (socket, state dir, default bridge, nft table, namespace
 * prefix) so that runs cannot collide. Everything it made in the kernel is removed when the test
 * ends, pass or fail, from its state file and its prefixes.
 */
export async function startDaemon(t: ExecutionContext, upstream: string, extraArgs: string[] = []): Promise<TestDaemon> {
  const tag = randomBytes(3).toString('hex');
  owned(t.title, tag);
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-daemon-'));
  const socket = join(dir, 'tsnet.sock');
  const netnsPrefix = `tsnet-t${tag}-`;
  const table = `tsnet_t${tag}`;
  const usedSubnets = new Set<string>();
  const subnet = (): string => {
    for (;;) {
      const s = `10.${randomInt(100, 250)}.${randomInt(0, 255)}.0/24`;
      if (!usedSubnets.has(s)) return usedSubnets.add(s), s;
    }
  };
  const bip = subnet();
  let child: ChildProcess | undefined;
  let logs = '';
  const start = async (): Promise<void> => {
    const args = [BIN, '--socket', socket, 'daemon', '--state-dir', join(dir, 'state'), '--upstream', upstream, '--bridge', `tst${tag}`, '--bip', bip, '--nft-table', table, '--netns-prefix', netnsPrefix, '--log-level', 'warn', ...extraArgs];
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    await untilAnswers(c, socket, () => stderr);
    const host = process.env.TSNET_TEST_HOST_NETNS ?? readlinkSync('/proc/self/ns/net');
    const mine = readlinkSync('/proc/self/ns/net');
    const its = readlinkSync(`/proc/${c.pid}/ns/net`);
    if (its !== host || mine !== host) throw new Error(`daemon netns ${its}, test ${mine}, host ${host}`);
  };
  t.teardown(async () => {
    child?.kill('SIGKILL');
    // Every link the daemon makes carries its mark as its alias, saved or not (killed mid-change):
    // the leftover check learns their names here, since names made of ids carry no tag.
    const mark = ownerMark(join(dir, 'state'));
    const marked = (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string; ifalias?: string }[]).filter((l) => l.ifalias === mark).map((l) => l.ifname);
    owned(t.title, ...marked);
    await removeNetnsStartingWith(netnsPrefix);
    for (const dev of new Set([`tst${tag}`, ...marked])) await run('ip', ['link', 'del', dev]).catch(() => {});
    for (const family of ['inet', 'bridge']) await run(systemTool('nft'), ['delete', 'table', family, table]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  const { tsnet, fails } = tsnetCli(socket);
  return {
    socket,
    stateDir: join(dir, 'state'),
    saved: () => readSavedState(join(dir, 'state'), netnsPrefix),
    editSaved: (edit) => editSavedState(join(dir, 'state'), edit, netnsPrefix),
    logs: () => logs,
    tag,
    netnsPrefix,
    subnet,
    tsnet,
    fails,
    kill9: async () => {
      const c = child!;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
      rmSync(socket, { force: true });
    },
    start,
  };
}

/** A user-defined network `app` with sandboxes `web` and `client` on it: what the restart tests bring back. */
export async function webAndClientOnApp(d: TestDaemon): Promise<void> {
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
}

/** Whether `ping` from sandbox `from` reaches `to` (an address or a name) within a second or two. */
export const pings = (d: TestDaemon, from: string, to: string, waitSeconds = 1): Promise<boolean> =>
  d.tsnet('exec', from, '--', 'ping', '-c', '1', '-W', String(waitSeconds), to).then(
    () => true,
    () => false,
  );

/**
 * "`from` cannot reach `to`", asserted with its control: at the same moment `from` does reach
 * `control`, so a sandbox whose networking is broken cannot pass for one that is blocked.
 */
export async function assertBlocked(t: ExecutionContext, d: TestDaemon, from: string, to: string, control: string, what: string): Promise<void> {
  t.true(await pings(d, from, control), `control for "${what}": ${from} reaches ${control}`);
  t.false(await pings(d, from, to), what);
}

/** Whether the host itself pings `ip` (an address in a namespace the test made). */
export const hostPings = (ip: string): Promise<boolean> =>
  run('ping', ['-c', '1', '-W', '1', ip]).then(
    () => true,
    () => false,
  );
