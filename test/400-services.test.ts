import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { killAllIn } from '../src/daemon/replica-process.js';
import { systemTool } from '../src/net/tools.js';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { across, holdConnection, startLoad } from './helpers/load.js';
import { outsideWorld } from './helpers/outside.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const fixture = (f: string): string => new URL(`./fixtures/${f}`, import.meta.url).pathname;

async function backend(t: ExecutionContext, d: TestDaemon, name: string): Promise<string> {
  await d.tsnet('sandbox', 'create', '--name', name, '--network', 'app');
  const [sb] = JSON.parse(await d.tsnet('sandbox', 'inspect', name));
  const child = spawn(systemTool('ip'), ['netns', 'exec', sb.NetnsName, process.execPath, fixture('self-echo.mjs'), '80'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((r) => child.stdout!.once('data', r));
  return sb.Networks.app.IPv4Address as string;
}

/** COUNT connections from sandbox `from` to `target`:80; returns replies counted by backend address. */
async function spread(d: TestDaemon, from: string, target: string, count: number): Promise<{ ok: number; failed: number; by: Record<string, number> }> {
  const ns = JSON.parse(await d.tsnet('sandbox', 'inspect', from))[0].NetnsName as string;
  const { stdout } = await run(systemTool('ip'), ['netns', 'exec', ns, process.execPath, fixture('connect-loop.mjs'), target, '80', String(count), '8'], { timeout: 120_000 });
  return JSON.parse(stdout);
}

const within = (got: number, expected: number): boolean => Math.abs(got - expected) <= expected * 0.1;

test.serial('a VIP service: the name answers the VIP, tasks.<svc> and SRV the tasks, and 3000 connections spread by weight', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const ips = [await backend(t, d, 't1'), await backend(t, d, 't2'), await backend(t, d, 't3')];
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const vip = (await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80')).trim().split(' ')[1]!;
  const ids: string[] = [];
  for (const sb of ['t1', 't2', 't3']) ids.push((await d.tsnet('service', 'task', 'add', 'api', '--sandbox', sb)).trim());

  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'api')).trim(), vip);
  t.deepEqual((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'tasks.api')).trim().split('\n').sort(), [...ips].sort());
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', '_http._tcp.api', 'SRV')).trim(), '0 1 80 api.app.');

  const even = await spread(d, 'client', 'api', 3000);
  t.is(even.failed, 0);
  for (const ip of ips) t.true(within(even.by[ip] ?? 0, 1000), `${ip}: ${even.by[ip]} of 3000`);

  await d.tsnet('service', 'task', 'health', 'api', ids[0]!, '--weight', '2');
  const weighted = await spread(d, 'client', vip, 3000);
  t.true(within(weighted.by[ips[0]!] ?? 0, 1500), `weight 2: ${weighted.by[ips[0]!]}`);
  t.true(within(weighted.by[ips[1]!] ?? 0, 750), `weight 1: ${weighted.by[ips[1]!]}`);
});

test.serial('an unhealthy or draining task leaves DNS and the VIP at once; a long-lived connection keeps its backend', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const ips = [await backend(t, d, 't1'), await backend(t, d, 't2')];
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80');
  const ids = [(await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't1')).trim(), (await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't2')).trim()];

  await d.tsnet('service', 'task', 'health', 'api', ids[1]!, '--healthy', 'false');
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'tasks.api')).trim(), ips[0]);
  const one = await spread(d, 'client', 'api', 300);
  t.deepEqual(one.by, { [ips[0]!]: 300 }, 'the unhealthy task gets no connection');

  // A connection opened now lands on t1 (the only serving task) and must outlive the changes below.
  const ns = JSON.parse(await d.tsnet('sandbox', 'inspect', 'client'))[0].NetnsName as string;
  const held = holdConnection(t, ns, 'api', 80);
  t.is(await held.greeting, ips[0], 'the held connection is open, to t1, before the changes');
  await d.tsnet('service', 'task', 'health', 'api', ids[1]!, '--healthy', 'true');
  await d.tsnet('service', 'task', 'health', 'api', ids[0]!, '--draining', 'true');
  const drained = await spread(d, 'client', 'api', 300);
  t.deepEqual(drained.by, { [ips[1]!]: 300 }, 'the draining task gets no new connection');
  t.is(await held.release(), `${ips[0]} still`, 'the long-lived connection kept its backend across the set changes');
});

test.serial('dnsrr services answer every serving task, shuffled; no VIP', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const ips = [await backend(t, d, 't1'), await backend(t, d, 't2'), await backend(t, d, 't3')];
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await d.tsnet('service', 'create', '--name', 'rr', '--network', 'app', '--endpoint-mode', 'dnsrr');
  for (const sb of ['t1', 't2', 't3']) await d.tsnet('service', 'task', 'add', 'rr', '--sandbox', sb);
  const orders = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const answer = (await d.tsnet('exec', 'client', '--', 'dig', '+short', 'rr')).trim().split('\n');
    t.deepEqual([...answer].sort(), [...ips].sort());
    orders.add(answer.join());
  }
  t.true(orders.size > 1, 'shuffled');
  t.regex((await d.fails('network', 'rm', 'app')).stderr, /service rr/);
});

test.serial('replicas run by tsnet: health checks move tasks out and back, and scaling up and down loses no connection', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const flags = await run('mktemp', ['-d']).then((r) => r.stdout.trim());
  t.teardown(() => run('rm', ['-rf', flags]));
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const myIp = "$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)";
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--port', 'http:tcp:80', '--replicas', '3',
    // Healthy while listening on :80 and no flag file named after the replica's address exists.
    '--health-cmd', `test ! -e ${flags}/${myIp} && ss -ltn | grep -q ':80 '`, '--health-interval', '200',
    '--', process.execPath, fixture('self-echo.mjs'), '80');
  const serving = async (): Promise<string[]> => (await d.tsnet('exec', 'client', '--', 'dig', '+short', 'tasks.web')).trim().split('\n').filter(Boolean).sort();
  const until = async (check: (ips: string[]) => boolean): Promise<string[]> => {
    for (let i = 0; i < 50; i++) {
      const ips = await serving();
      if (check(ips)) return ips;
      await new Promise((r) => setTimeout(r, 200));
    }
    return serving();
  };
  const all = await until((ips) => ips.length === 3);
  t.is(all.length, 3, 'three replicas become healthy and serve');
  const spread3 = await spread(d, 'client', 'web', 300);
  t.deepEqual(Object.keys(spread3.by).sort(), all);

  await run('touch', [`${flags}/${all[0]}`]);
  t.deepEqual(await until((ips) => !ips.includes(all[0]!)), all.slice(1), 'an unhealthy replica leaves the answers');
  const without = await spread(d, 'client', 'web', 200);
  t.is(without.ok, 200, 'control: the VIP still serves');
  t.false(Object.keys(without.by).includes(all[0]!), 'and the VIP');
  await run('rm', [`${flags}/${all[0]}`]);
  t.is((await until((ips) => ips.length === 3)).length, 3, 'it comes back when healthy');

  const ns = JSON.parse(await d.tsnet('sandbox', 'inspect', 'client'))[0].NetnsName as string;
  const result = await across(
    startLoad(t, ns, 'web', 80),
    async () => {
      await d.tsnet('service', 'scale', 'web', '4');
      await d.tsnet('service', 'scale', 'web', '2');
    },
    { total: 1500 },
  );
  t.true(result.during > 0, 'connections finished while scaling');
  t.is(result.failed, 0, 'no connection failed during scale up and down');
  t.true(result.ok >= 1500, `${result.ok} connections`);
  t.is((await until((ips) => ips.length === 2)).length, 2);
  t.regex(await d.tsnet('sandbox', 'ls'), /web\./, 'control: the replicas are listed while the service exists');
  await d.tsnet('service', 'rm', 'web');
  t.notRegex(await d.tsnet('sandbox', 'ls'), /web\./, 'the replicas went with the service');
});

test.serial('--lb ipvs where the kernel has no IPVS: a clear error, and the nftables backend keeps balancing', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  // At info level: on a kernel with IPVS the daemon says so at info.
  const d = await startDaemon(t, up.label, ['--lb', 'ipvs', '--log-level', 'info']);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const ips = [await backend(t, d, 't1'), await backend(t, d, 't2')];
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80');
  for (const sb of ['t1', 't2']) await d.tsnet('service', 'task', 'add', 'api', '--sandbox', sb);
  const r = await spread(d, 'client', 'api', 200);
  t.deepEqual(Object.keys(r.by).sort(), [...ips].sort());
  // Whether the kernel has IPVS is asked of the kernel itself (generic netlink), not of the daemon's logs.
  const kernelHasIpvs = await run('genl', ['ctrl', 'get', 'name', 'IPVS']).then(() => true, () => false);
  const lines = d.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; err?: string });
  if (kernelHasIpvs) t.true(lines.some((l) => l.msg === 'VIPs are programmed in IPVS'), d.logs());
  else t.regex(lines.find((l) => l.msg === '--lb ipvs unavailable; using the nftables backend')?.err ?? 'no such log line', /^lb\/ipvs: this kernel has no IPVS/, d.logs());
});

test.serial('a TCP health check takes a replica whose server died out of DNS; a health flip under load loses no connection', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--port', 'http:tcp:80', '--replicas', '2', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, fixture('self-echo.mjs'), '80');
  const tasks = async (): Promise<string[]> => (await d.tsnet('exec', 'client', '--', 'dig', '+short', 'tasks.web')).trim().split('\n').filter(Boolean);
  const until = async (n: number): Promise<string[]> => {
    for (let i = 0; i < 50 && (await tasks()).length !== n; i++) await new Promise((r) => setTimeout(r, 200));
    return tasks();
  };
  t.is((await until(2)).length, 2, 'both replicas pass the TCP check');
  const ns = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web.1'))[0].NetnsName as string;
  // Killed again whenever the replica restarts it (after 2 s): on a loaded machine the polls
  // below could otherwise miss the window between the check's verdict and the restart.
  await killAllIn(ns);
  const keepDead = setInterval(() => void killAllIn(ns), 100);
  try {
    t.is((await until(1)).length, 1, 'the replica whose server died leaves the answers');
  } finally {
    clearInterval(keepDead);
  }

  await backend(t, d, 't1');
  await backend(t, d, 't2');
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80');
  const ids = [(await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't1')).trim(), (await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't2')).trim()];
  const client = JSON.parse(await d.tsnet('sandbox', 'inspect', 'client'))[0].NetnsName as string;
  const result = await across(
    startLoad(t, client, 'api', 80),
    async () => {
      for (let i = 0; i < 3; i++) {
        await d.tsnet('service', 'task', 'health', 'api', ids[0]!, '--healthy', 'false');
        await d.tsnet('service', 'task', 'health', 'api', ids[0]!, '--healthy', 'true');
      }
    },
    { total: 1500 },
  );
  t.true(result.during > 0, 'connections finished while health flipped');
  t.is(result.failed, 0);
  t.true(result.ok >= 1500, `${result.ok} connections`);
});

test.serial('--publish balances a host port over the serving tasks, reached from an outside namespace', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const ips = [await backend(t, d, 't1'), await backend(t, d, 't2')];
  const port = 20000 + Math.floor(Math.random() * 20000);
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--publish', `${port}:80`);
  const ids = [(await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't1')).trim(), (await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 't2')).trim()];
  const ask = async () => JSON.parse((await run(systemTool('ip'), ['netns', 'exec', out.name, process.execPath, fixture('connect-loop.mjs'), out.hostIp, String(port), '200', '4'])).stdout) as { ok: number; by: Record<string, number> };
  const both = await ask();
  t.is(both.ok, 200);
  t.deepEqual(Object.keys(both.by).sort(), [...ips].sort());
  await d.tsnet('service', 'task', 'health', 'api', ids[0]!, '--healthy', 'false');
  t.deepEqual(Object.keys((await ask()).by), [ips[1]], 'an unhealthy task leaves the published port too');
  t.regex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, new RegExp(`dport ${port}`), 'control: the rule is listed while published');
  await d.tsnet('service', 'rm', 'api');
  t.notRegex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, new RegExp(`dport ${port}`));
});
