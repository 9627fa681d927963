import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const fixture = (f: string): string => new URL(`./fixtures/${f}`, import.meta.url).pathname;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function setUp(t: ExecutionContext): Promise<{ d: TestDaemon; dir: string; lines(file: string): string[] }> {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-replicas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines = (file: string): string[] => {
    try {
      return readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  return { d, dir, lines };
}

const pidsIn = async (d: TestDaemon, sandbox: string): Promise<string[]> =>
  (await run('ip', ['netns', 'pids', `${d.netnsPrefix}${sandbox}`])).stdout.split('\n').filter(Boolean).sort();

test.serial('health check rounds never overlap, even when a check takes longer than the interval', async (t) => {
  const { d, dir, lines } = await setUp(t);
  // Each check logs its start and end and takes 600 ms; rounds are asked for every 100 ms.
  const check = `echo start >> ${dir}/log; sleep 0.6; echo end >> ${dir}/log`;
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--replicas', '1', '--health-cmd', check, '--health-interval', '100', '--', 'exec sleep 1000');
  await sleep(3000);
  const log = lines('log');
  t.true(log.length >= 4, `${log.length} lines`);
  t.true(log.every((l, i) => l === (i % 2 === 0 ? 'start' : 'end') || i === log.length - 1), `start and end alternate: ${log.join(' ')}`);
});

test.serial('--health-interval under 100 ms is refused by the CLI and by the API, and no service is made', async (t) => {
  const { d } = await setUp(t);
  const cli = await d.fails('service', 'create', '--name', 'web', '--network', 'app', '--replicas', '1', '--health-cmd', 'true', '--health-interval', '0', '--', 'sleep 1000');
  t.not(cli.code, 0);
  t.regex(cli.stderr, /--health-interval.*at least 100/);
  const body = JSON.stringify({ Name: 'web', Network: 'app', Replicas: { Count: 1, Command: 'sleep 1000', HealthCmd: 'true', HealthInterval: 5 } });
  const api = (await run('curl', ['-s', '-w', '\n%{http_code}', '--unix-socket', d.socket, '-X', 'POST', '-H', 'Content-Type: application/json', '-d', body, 'http://tsnet/services/create'])).stdout.split('\n');
  t.is(api.at(-1), '400');
  t.regex(api[0]!, /Replicas\.HealthInterval 5/);
  t.deepEqual(JSON.parse(await d.tsnet('service', 'ls', '--format', 'json')), []);
});

test.serial('a replica whose command exits is started again, each time a little later', async (t) => {
  const { d, dir, lines } = await setUp(t);
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--replicas', '1', '--', `date +%s%N >> ${dir}/starts; exit 3`);
  // Started at 0, again after 2 s, then after 4 more.
  await sleep(7500);
  const starts = lines('starts').map((l) => Number(BigInt(l) / 1_000_000n));
  t.true(starts.length >= 3, `${starts.length} starts`);
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  t.true(gaps[0]! >= 1900, `first restart after ${gaps[0]} ms`);
  t.true(gaps[1]! > gaps[0]! * 1.5, `backoff grows: ${gaps.join(', ')} ms`);
});

test.serial('replicas that outlive a daemon killed with -9 are adopted by the next one, not started twice', async (t) => {
  const { d, dir, lines } = await setUp(t);
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--replicas', '2', '--health-tcp', '80', '--health-interval', '200', '--', `echo x >> ${dir}/starts; exec ${process.execPath} ${fixture('self-echo.mjs')} 80`);
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const healthy = async (n: number): Promise<number> => {
    let got = 0;
    for (let i = 0; i < 50 && got !== n; i++, await sleep(200)) got = (await d.tsnet('exec', 'client', '--', 'dig', '+short', 'tasks.web')).trim().split('\n').filter(Boolean).length;
    return got;
  };
  t.is(await healthy(2), 2);
  const before = [await pidsIn(d, 'web.1'), await pidsIn(d, 'web.2')];
  await d.kill9();
  await d.start();
  await sleep(1500);
  t.is(lines('starts').length, 2, 'no replica was started again');
  t.deepEqual([await pidsIn(d, 'web.1'), await pidsIn(d, 'web.2')], before, 'the same processes serve');
  t.is(await healthy(2), 2, 'and pass their checks under the new daemon');
  // Adopted replicas are supervised too: one that dies is started again.
  for (const pid of before[0]!) process.kill(Number(pid), 'SIGKILL');
  for (let i = 0; i < 40 && lines('starts').length < 3; i++) await sleep(200);
  t.is(lines('starts').length, 3, 'an adopted replica that died is restarted');
});

test.serial('concurrent scale requests run one after the other and end with exactly the replicas asked for', async (t) => {
  const { d } = await setUp(t);
  await d.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--replicas', '1', '--', 'exec sleep 1000');
  await Promise.all([d.tsnet('service', 'scale', 'web', '4'), d.tsnet('service', 'scale', 'web', '4'), d.tsnet('service', 'scale', 'web', '4')]);
  const sandboxes = (JSON.parse(await d.tsnet('sandbox', 'ls', '--format', 'json')) as { Name: string }[]).map((s) => s.Name).sort();
  t.deepEqual(sandboxes, ['web.1', 'web.2', 'web.3', 'web.4']);
  const [svc] = JSON.parse(await d.tsnet('service', 'inspect', 'web'));
  t.is(svc.Tasks.length, 4);
  t.is(svc.Replicas.Count, 4);
});
