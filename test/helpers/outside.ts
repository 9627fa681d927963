import { randomInt } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { run, testNetns } from './netns.js';

/**
 * A namespace standing for the outside world: a veth to the host with a /30 of its own, so
 * traffic "from outside" reaches the host and never leaves this machine.
 */
export async function outsideWorld(t: ExecutionContext, tag: string): Promise<{ name: string; hostIp: string; outIp: string; exec(...cmd: string[]): Promise<string> }> {
  const ns = await testNetns(t);
  const link = `tso${tag}`;
  const [a, b] = [randomInt(100, 250), randomInt(0, 64) * 4];
  const hostIp = `10.${a}.${b}.1`;
  const outIp = `10.${a}.${b}.2`;
  await run('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
  t.teardown(() => run('ip', ['link', 'del', link]).catch(() => {}));
  await run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', link]);
  await run('ip', ['link', 'set', link, 'up']);
  await run('ip', ['-n', ns.name, 'addr', 'add', `${outIp}/30`, 'dev', 'eth0']);
  await run('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
  return { name: ns.name, hostIp, outIp, exec: ns.exec };
}
