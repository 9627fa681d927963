// One crash run: a daemon with names of its own takes a random stream of API changes, is killed
// with SIGKILL at a random moment, and is started again; then the saved state must be the last
// acknowledged change (or the one in flight, applied whole), the kernel must match it, and
// nothing the state does not name may be left. Used by bench/crash.ts and test/410.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { call, ControlError } from '../src/control/client.js';
import { readSavedState } from '../src/daemon/saved-state.js';
import { ownerMark } from '../src/daemon/state.js';
import type { Store } from '../src/store/store.js';
import { kernelMatches, leftovers, markedPids, type RunNames } from './crash-check.js';
import { canonical, emptyModel, modelOf, nextOp, prng, type Model, type Op, type SavedState } from './crash-model.js';
import { removeLeftovers } from './leftovers.js';

/** The package root, from bench/ (tsx) or dist/bench/ (built). */
function packageRoot(): string {
  let dir = dirname(new URL(import.meta.url).pathname);
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

export interface CrashResult {
  seed: number;
  /** Changes acknowledged before the kill. */
  acked: number;
  /** The change the kill cut short, if any. */
  inFlight?: string;
  /** Milliseconds from starting the daemon again to its first answer. */
  restartMs: number;
  failures: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function startDaemon(args: string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin/tsnet'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err };
}

async function answering(socket: string, d: { child: ChildProcess; stderr: () => string }): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (d.child.exitCode !== null) throw new Error(`daemon exited ${d.child.exitCode}: ${d.stderr()}`);
    if (await call(socket, 'GET', '/networks').then(() => true, () => false)) return;
    await sleep(20);
  }
  throw new Error(`daemon did not answer on ${socket} within 30 s: ${d.stderr()}`);
}

const killed = (c: ChildProcess): Promise<void> =>
  new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r();
    c.once('exit', () => r());
    c.kill('SIGKILL');
  });

/** Sends changes until `stop` resolves; returns the model of what was acknowledged and the change cut short. */
async function stream(socket: string, r: ReturnType<typeof prng>, fresh: Parameters<typeof nextOp>[2], command: string, stop: Promise<void>): Promise<{ acked: Model; count: number; inFlight?: Op }> {
  let model = emptyModel();
  let count = 0;
  let stopped = false;
  void stop.then(() => (stopped = true));
  while (!stopped) {
    const op = nextOp(model, r, fresh, command);
    const outcome = await call(socket, op.method, op.path, op.body).then(
      () => 'done' as const,
      (err: Error) => (err instanceof ControlError ? ('refused' as const) : ('cut' as const)),
    );
    if (outcome === 'cut') return { acked: model, count, inFlight: op };
    if (outcome === 'done') {
      model = op.apply(model);
      count++;
    }
  }
  return { acked: model, count };
}

/** The daemon's `--store` when it is not the embedded one, and a client of it to read back what was saved. */
export interface CrashStore {
  url: string;
  open(): Store;
}

/** One run; `seed` picks the changes and the moment of the kill. */
export async function crashRun(seed: number, store?: CrashStore): Promise<CrashResult> {
  const r = prng(seed);
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-crash-'));
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'tsnet.sock');
  const names: RunNames = {
    owner: ownerMark(stateDir),
    netnsPrefix: `tsnet-c${tag}-`,
    nftTable: `tsnet_c${tag}`,
    marker: `9${parseInt(tag, 16)}`,
  };
  const octet = r.int(100, 250);
  let third = r.int(0, 200);
  let n = 0;
  const fresh = { n: () => ++n, subnet: () => `10.${octet}.${++third % 256}.0/24`, port: () => 20000 + r.int(0, 25000) };
  const cluster = store === undefined ? [] : ['--store', store.url, '--node', `crash${tag}`, '--lease-ttl', '5'];
  const args = ['--socket', socket, 'daemon', '--state-dir', stateDir, '--upstream', '127.0.0.1:9', '--bridge', `tsc${tag}`, '--bip', fresh.subnet(), '--nft-table', names.nftTable, '--netns-prefix', names.netnsPrefix, '--log-level', 'warn', ...cluster];
  let daemon = startDaemon(args);
  const result: CrashResult = { seed, acked: 0, restartMs: 0, failures: [] };
  try {
    await answering(socket, daemon);
    const first = daemon.child;
    const stop = sleep(r.int(200, 4000)).then(() => killed(first));
    const s = await stream(socket, r, fresh, `exec sleep ${names.marker}`, stop);
    await stop;
    result.acked = s.count;
    if (s.inFlight !== undefined) result.inFlight = s.inFlight.what;
    const t0 = performance.now();
    daemon = startDaemon(args);
    await answering(socket, daemon);
    result.restartMs = Math.round(performance.now() - t0);
    const client = store?.open();
    const state: SavedState = await readSavedState(stateDir, names.netnsPrefix, client).finally(() => client?.close());
    const got = canonical(modelOf(state));
    const allowed = [canonical(s.acked), ...(s.inFlight === undefined ? [] : [canonical(s.inFlight.apply(s.acked))])];
    if (!allowed.includes(got)) result.failures.push(`state ${got} is neither the last acknowledged ${allowed[0]} nor the one in flight applied${allowed[1] === undefined ? '' : ` ${allowed[1]}`}`);
    result.failures.push(...(await kernelMatches(state, names)), ...(await leftovers(state, names)));
  } catch (err) {
    result.failures.push((err as Error).message);
  } finally {
    await killed(daemon.child);
    for (const pid of markedPids(names.marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    removeLeftovers({ dir, netnsPrefix: names.netnsPrefix, defaultBridge: `tsc${tag}`, nftTable: names.nftTable });
  }
  return result;
}
