import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DigResult {
  status: string;
  flags: string[];
  answers: { name: string; ttl: number; type: string; data: string }[];
  authority: string[];
  /** The EDNS line (`; EDNS: version: 0, flags:; udp: 1232`), if any. */
  edns: string | undefined;
  raw: string;
}

function parse(out: string): DigResult {
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(out)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = (title: string): string[] => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(out);
    return m === null ? [] : m[1]!.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  };
  const answers = section('ANSWER').map((l) => {
    const [name, ttl, , type, ...data] = l.split(/\s+/);
    return { name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') };
  });
  return { status, flags, answers, authority: section('AUTHORITY'), edns: /; EDNS: [^\n]*/.exec(out)?.[0], raw: out };
}

/** Runs BIND's dig against 127.0.0.1:`port`; `args` are dig's own (name, type, +tcp, -b …). */
export const dig = (port: number, ...args: string[]): Promise<DigResult> => digAt('127.0.0.1', port, ...args);

/** The same against `server`:`port` (an address of the test's own, on loopback or in its namespaces). */
export async function digAt(server: string, port: number, ...args: string[]): Promise<DigResult> {
  const { stdout } = await run('dig', [`@${server}`, '-p', String(port), '+tries=1', '+time=3', ...args]);
  return parse(stdout);
}

/**
 * dig run synchronously: this thread (the server's main thread, in-process) does nothing until
 * it ends, so what answers can only be another thread. Null when no reply came within `+time`.
 */
export function digBlocking(port: number, ...args: string[]): DigResult | null {
  const r = spawnSync('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=1', ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) throw r.error;
  // dig's exit status 9: no reply from the server.
  if (r.status === 9) return null;
  if (r.status !== 0) throw new Error(`dig exited ${r.status}: ${r.stderr}`);
  return parse(r.stdout);
}

/** Runs Knot's kdig against 127.0.0.1:`port`. */
export async function kdig(port: number, ...args: string[]): Promise<DigResult> {
  const { stdout } = await run('kdig', ['@127.0.0.1', '-p', String(port), '+retry=0', '+time=3', ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const flags = (/;; Flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const answers = (/;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(stdout)?.[1] ?? '')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [name, ttl, , type, ...data] = l.split(/\s+/);
      return { name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') };
    });
  return { status, flags, answers, authority: [], edns: /;; Version: [^\n]*/.exec(stdout)?.[0], raw: stdout };
}

/** The answer data of a dig result, sorted, for order-independent comparison. */
export const datas = (r: DigResult): string[] => r.answers.map((a) => a.data).sort();
