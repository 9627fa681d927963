import { spawn, type ChildProcess } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { systemTool } from '../../src/net/tools.js';

const fixture = (f: string): string => new URL(`../fixtures/${f}`, import.meta.url).pathname;

export interface LoadResult {
  ok: number;
  failed: number;
  by: Record<string, number>;
}

export interface Load {
  /** Connections finished so far, good or failed. */
  done(): number;
  /** Resolves once at least `n` connections have finished. */
  reached(n: number): Promise<void>;
  /** Starts no more connections; resolves with the totals once the last one has finished. */
  stop(): Promise<LoadResult>;
}

/** Lines a child writes to `stream`, each handed to `onLine`. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const all = (rest + chunk.toString()).split('\n');
    rest = all.pop() ?? '';
    all.forEach(onLine);
  });
}

function inNetns(t: ExecutionContext, netns: string, args: string[]): { child: ChildProcess; stdout: string[]; exited: Promise<number | null> } {
  const child = spawn(systemTool('ip'), ['netns', 'exec', netns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const stdout: string[] = [];
  lines(child.stdout!, (l) => stdout.push(l));
  return { child, stdout, exited: new Promise((r) => child.once('exit', r)) };
}

/**
 * Connections to HOST:PORT from namespace `netns`, PARALLEL at a time, until stopped: a test
 * waits for some to finish before a change and some more after it, so the load is known to
 * have run across the change (connect-loop.mjs in `stdin` mode).
 */
export function startLoad(t: ExecutionContext, netns: string, host: string, port: number, parallel = 4): Load {
  const { child, stdout, exited } = inNetns(t, netns, [fixture('connect-loop.mjs'), host, String(port), 'stdin', String(parallel)]);
  let done = 0;
  const waiters = new Set<() => void>();
  lines(child.stderr!, (l) => {
    if (/^\d+$/.test(l)) done = Number(l);
    for (const w of waiters) w();
  });
  return {
    done: () => done,
    reached: (n) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (done < n) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        void exited.then((code) => reject(new Error(`connect-loop exited ${code} after ${done} connections, before ${n}`)));
        check();
      }),
    stop: async () => {
      child.stdin!.end();
      const code = await exited;
      if (code !== 0) throw new Error(`connect-loop exited ${code}`);
      return JSON.parse(stdout.at(-1) ?? 'null') as LoadResult;
    },
  };
}

/** One connection to HOST:PORT from `netns` held open: `greeting` once it is open, `release()` its last line once it echoed after. */
export function holdConnection(t: ExecutionContext, netns: string, host: string, port: number): { greeting: Promise<string>; release(): Promise<string> } {
  const { child, stdout, exited } = inNetns(t, netns, [fixture('hold.mjs'), host, String(port), 'stdin']);
  const greeting = new Promise<string>((resolve, reject) => {
    lines(child.stdout!, resolve); // the first line settles it
    void exited.then((code) => reject(new Error(`hold.mjs exited ${code} before its greeting`)));
  });
  return {
    greeting,
    release: async () => {
      child.stdin!.end();
      const code = await exited;
      if (code !== 0) throw new Error(`hold.mjs exited ${code}: the held connection broke`);
      return stdout.at(-1) ?? '';
    },
  };
}

/**
 * Runs `change` under `load`: `margin` connections finish before it starts and `margin` more after
 * it is done (and `total` in all), so the load provably spans the change. Returns the totals,
 * with how many connections finished while the change ran.
 */
export async function across(load: Load, change: () => Promise<void>, { total = 0, margin = 50 } = {}): Promise<LoadResult & { during: number }> {
  await load.reached(margin);
  const start = load.done();
  await change();
  const end = load.done();
  await load.reached(Math.max(total, end + margin));
  return { ...(await load.stop()), during: end - start };
}
