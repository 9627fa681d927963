import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

const BIN = new URL('../../bin/tsnet-dns', import.meta.url).pathname;

export interface RunningDns {
  port: number;
  dir: string;
  records: string;
  child: ChildProcess;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  writeRecords(doc: unknown): void;
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/**
 * Starts the real ./bin/tsnet-dns on a free loopback port with `doc` as its records file and
 * stops it (and removes its files) when the test ends, passed or failed. With `doc` null no
 * records file is written and `args` should name one.
 */
export async function startDns(t: ExecutionContext, doc: unknown, args: string[] = []): Promise<RunningDns> {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-test-'));
  const records = join(dir, 'records.json');
  if (doc !== null) writeFileSync(records, JSON.stringify(doc));
  const hasListen = args.includes('--listen');
  const hasUpstream = args.includes('--upstream');
  const child = spawn(
    process.execPath,
    [BIN, ...(doc === null ? [] : ['--records', records]), ...(hasListen ? [] : ['--listen', '127.0.0.1:0']), ...(hasUpstream ? [] : ['--upstream', '127.0.0.1:9']), '--log-level', 'debug', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let rest = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const waitForLog = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 5000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = (): void => {
        const found = logs.find(match);
        if (found === undefined) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      child.once('exit', (code) => reject(new Error(`tsnet-dns exited ${code}: ${stderr}`)));
      check();
    });
  const ready = await waitForLog((l) => l.msg === 'ready', 30_000);
  const [first] = ready.listen as string[];
  return {
    port: Number(first!.split(':').pop()),
    dir,
    records,
    child,
    logs,
    writeRecords: (d) => writeFileSync(records, JSON.stringify(d)),
    waitForLog,
  };
}
