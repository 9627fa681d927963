import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';

const children = new Set<ChildProcess>();
const pids = new Set<number>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Starts `cmd` pinned to `cpu`; it is killed when the bench exits, whatever happens. */
export function startPinned(cpu: number, cmd: string, args: string[]): ChildProcess {
  const child = spawn('taskset', ['-c', String(cpu), cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.on('exit', (code) => {
    children.delete(child);
    if (code !== 0 && code !== null) process.stderr.write(`${cmd} exited ${code}: ${stderr}\n`);
  });
  children.add(child);
  return child;
}

/** Remembers a daemonized process so that it is killed at exit too. */
export const adopt = (pid: number): void => void pids.add(pid);

export function stop(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  pids.delete(pid);
}

/** Resident set size of a process, MB. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

/** Waits until 127.0.0.1:`port` answers an A query for `name` over UDP with a reply `accepted` takes (by default any). */
export async function waitForDns(port: number, timeoutMs = 10_000, name = 'web', accepted: (reply: Buffer) => boolean = () => true): Promise<void> {
  const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const query = Buffer.concat([Buffer.from('000100000001000000000000', 'hex'), qname, Buffer.from('00010001', 'hex')]);
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      // Short: before the server listens nothing comes back at all, and a start is timed by this.
      const t = setTimeout(() => {
        s.close();
        resolve(false);
      }, 100);
      s.on('message', (reply: Buffer) => {
        clearTimeout(t);
        s.close();
        resolve(accepted(reply));
      });
      s.on('error', () => {});
      s.send(query, port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`nothing answers DNS for ${name} on 127.0.0.1:${port}`);
}
