import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { owned } from './ledger.js';

export const run = promisify(execFile);

/**
 * A network namespace made for one test, with `/etc/netns/NAME/resolv.conf` naming 127.0.0.11
 * so that glibc inside (`ip netns exec`) asks tsnet. Removed when the test ends, pass or fail.
 */
export async function testNetns(t: ExecutionContext, options: { resolvConf?: string } = {}): Promise<{ name: string; path: string; exec(...cmd: string[]): Promise<string> }> {
  const name = `tsnet-t-${randomBytes(4).toString('hex')}`;
  owned(t.title, name);
  await run('ip', ['netns', 'add', name]);
  const etc = `/etc/netns/${name}`;
  mkdirSync(etc, { recursive: true });
  writeFileSync(`${etc}/resolv.conf`, options.resolvConf ?? 'nameserver 127.0.0.11\noptions ndots:0\n');
  t.teardown(async () => {
    rmSync(etc, { recursive: true, force: true });
    await run('ip', ['netns', 'del', name]).catch(() => {});
  });
  return {
    name,
    path: `/run/netns/${name}`,
    exec: async (...cmd: string[]) => (await run('ip', ['netns', 'exec', name, ...cmd], { timeout: 10_000 })).stdout,
  };
}
