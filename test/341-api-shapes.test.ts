import test from 'ava';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { call, ControlError } from '../src/control/client.js';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

/** Status and message of a control API call (0 when it was accepted). */
const answer = (d: TestDaemon, method: string, path: string, body?: unknown): Promise<{ status: number; message: string }> =>
  call(d.socket, method, path, body).then(
    () => ({ status: 0, message: 'accepted' }),
    (err: Error) => ({ status: err instanceof ControlError ? err.status : -1, message: err.message }),
  );

/** The daemon's process: the one whose command line names its control socket. */
function daemonPid(d: TestDaemon): number {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(d.socket) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('daemon')) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no process serves ${d.socket}`);
}

const rssKiB = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

/** POSTs `total` bytes (declared in Content-Length, or chunked), stopping once the daemon answers; its status and body. */
function postHuge(d: TestDaemon, total: number, declare: boolean): Promise<{ status: number; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = false;
    const req = request({ socketPath: d.socket, method: 'POST', path: '/networks/create', headers: declare ? { 'Content-Length': String(total), 'Content-Type': 'application/json' } : { 'Content-Type': 'application/json' } }, (res) => {
      done = true;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, sent }));
    });
    req.on('error', (err) => (done ? undefined : reject(err)));
    const chunk = Buffer.alloc(64 * 1024, 'a');
    req.write('{"Name":"');
    const pump = (): void => {
      while (!done && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!done) req.end('"}');
    };
    pump();
  });
}

test.serial('wrong JSON types, bad encodings and namespaces that are not ones get 400 with the field named, and change nothing', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const cases: [string, string, unknown, RegExp][] = [
    ['POST', '/networks/create', { Name: 'n', IPAM: { Config: [null] } }, /^IPAM\.Config\[0\]: null is not an object$/],
    ['POST', '/networks/create', { Name: 'n', IPAM: { Config: [5] } }, /^IPAM\.Config\[0\]: 5 is not an object$/],
    ['POST', '/networks/create', { Name: 'n', IPAM: 'x' }, /^IPAM: "x" is not an object$/],
    ['POST', '/networks/create', { Name: 'n', IPAM: { Config: [{ Subnet: 10 }] } }, /^IPAM\.Config\[0\]\.Subnet: 10 is not a string$/],
    ['POST', '/networks/create', { Name: 'n', Internal: 'yes' }, /^Internal: "yes" is not true or false$/],
    ['POST', '/networks/create', { Name: 'n', Labels: { a: 1 } }, /^Labels\.a: 1 is not a string$/],
    ['POST', '/networks/create', { Name: 'n', Options: { 'com.docker.network.driver.mtu': '0x5dc' } }, /^com\.docker\.network\.driver\.mtu: "0x5dc" is not a decimal integer/],
    ['POST', '/networks/create', { Name: 'n', Options: { 'com.docker.network.driver.mtu': '1e3' } }, /is not a decimal integer/],
    ['POST', '/networks/create', { Name: 'n', Options: { 'com.docker.network.driver.mtu': '100000' } }, /is not a decimal integer from 576 to 65535/],
    ['POST', '/networks/create', { Name: 'x'.repeat(900_000) }, /^invalid network name "xxx/],
    ['POST', '/networks/bridge/connect', { Container: 5 }, /^Container: 5 is not a string$/],
    ['POST', '/networks/bridge/disconnect', { Container: ['x'] }, /^Container: \["x"\] is not a string$/],
    ['POST', '/sandboxes/create', { name: 's', networks: 'x' }, /^networks: "x" is not a list$/],
    ['POST', '/sandboxes/create', { name: 's', networks: [5] }, /^networks\[0\]: 5 is not an object$/],
    ['POST', '/sandboxes/create', { name: 's', publishAll: 'yes' }, /^publishAll: "yes" is not true or false$/],
    ['POST', '/sandboxes/create', { name: 's', netns: '/etc/passwd' }, /^netns: "\/etc\/passwd" is not a namespace/],
    ['POST', '/sandboxes/create', { name: 's', netns: '/proc/self/ns/mnt' }, /^netns: .* is a namespace of another kind/],
    ['POST', '/sandboxes/create', { name: 's', netns: 'run/netns/x' }, /is not an absolute path/],
    ['POST', '/sandboxes/create', { name: 's', pid: 4_000_000 }, /^pid: "\/proc\/4000000\/ns\/net" does not exist$/],
    ['POST', '/services/create', { Name: 'svc', Network: 'bridge', Replicas: 'x' }, /^Replicas: "x" is not an object$/],
    ['GET', '/networks/%E0%A4%A', undefined, /has bad percent-encoding/],
    ['DELETE', '/sandboxes/%zz', undefined, /has bad percent-encoding/],
  ];
  for (const [method, path, body, message] of cases) {
    const r = await answer(d, method, path, body);
    t.is(r.status, 400, `${method} ${path} ${JSON.stringify(body)?.slice(0, 100)}: ${r.message.slice(0, 200)}`);
    t.regex(r.message, message);
    t.true(r.message.length < 500, 'the echoed value is cut short');
  }
  const deep = `{"Name":"n","Labels":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath: d.socket, method: 'POST', path: '/networks/create' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(deep);
  });
  t.deepEqual([r.status, JSON.parse(r.body).message], [400, 'request body nests deeper than 32 levels']);
  t.deepEqual(JSON.parse(await d.tsnet('network', 'ls', '--format', 'json')).map((n: { Name: string }) => n.Name), ['bridge'], 'no network was made');
  t.notRegex(await d.tsnet('sandbox', 'ls'), /\bs\b/);
  t.false((await run('ip', ['netns', 'list'])).stdout.split('\n').some((l) => l.startsWith(d.netnsPrefix)), 'no namespace was made');
  t.is(d.logs(), '', 'nothing was a 500');
});

test.serial('subnets in loopback, multicast, link-local or reserved ranges, or on a host interface, and gateways on the network or broadcast address are refused', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const veth = `tsh${d.tag}`;
  const used = d.subnet().replace(/0\/24$/, '');
  await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  t.teardown(() => run('ip', ['link', 'del', veth]).catch(() => {}));
  await run('ip', ['addr', 'add', `${used}1/26`, 'dev', veth]);
  const free = d.subnet();
  const base = free.replace(/0\/24$/, '');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ Subnet: '127.0.0.0/24' }, /^subnet 127\.0\.0\.0\/24 is in the loopback range 127\.0\.0\.0\/8$/],
    [{ Subnet: '224.0.0.0/24' }, /multicast range/],
    [{ Subnet: '169.254.7.0/24' }, /link-local range/],
    [{ Subnet: '240.0.0.0/24' }, /reserved range/],
    [{ Subnet: '0.0.0.0/0' }, /"this network" range/],
    [{ Subnet: `${used}0/24` }, new RegExp(`^subnet ${used.replaceAll('.', '\\.')}0/24 overlaps the host's ${veth} \\(`)],
    [{ Subnet: free, Gateway: `${base}0` }, /is the network address of/],
    [{ Subnet: free, Gateway: `${base}255` }, /is the broadcast address of/],
  ];
  for (const [config, message] of cases) {
    const r = await answer(d, 'POST', '/networks/create', { Name: 'n', IPAM: { Config: [config] } });
    t.is(r.status, 400, JSON.stringify(config));
    t.regex(r.message, message, JSON.stringify(config));
  }
  t.is((await answer(d, 'POST', '/networks/create', { Name: 'n', IPAM: { Config: [{ Subnet: free, Gateway: `${base}254` }] } })).status, 0, 'a subnet clear of all of them is taken');
});

test.serial('a 50 MB body gets 413 without being read whole: the daemon grows by a few MB at most and answers after', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const pid = daemonPid(d);
  await call(d.socket, 'GET', '/networks');
  const before = rssKiB(pid);
  for (const declare of [true, false]) {
    const r = await postHuge(d, 50 * 1024 * 1024, declare);
    t.is(r.status, 413, `Content-Length ${declare ? 'declared' : 'absent (chunked)'}`);
    t.regex(JSON.parse(r.body).message, /over the limit of 1048576/);
    t.true(r.body.length < 200, 'the reply does not echo the body');
    t.true(r.sent < 50 * 1024 * 1024, `the sender was stopped early (${r.sent} bytes sent)`);
  }
  const after = rssKiB(pid);
  t.log(`daemon RSS ${before} kB before, ${after} kB after two 50 MB bodies`);
  t.true(after - before < 8 * 1024, `RSS grew by ${after - before} kB`);
  t.is((await call<unknown[]>(d.socket, 'GET', '/networks')).length, 1, 'the daemon still answers');
});
