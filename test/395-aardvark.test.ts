import test from 'ava';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processAlive as alive } from '../src/daemon/replica-process.js';
import { datas, digAt } from './helpers/dig.js';
import { within } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const BIN = new URL('../bin/tsnet-dns', import.meta.url).pathname;

// Container ids as netavark writes them (64 hex), and the short ids podman adds as names.
const A = 'a'.repeat(8) + '1'.repeat(56);
const B = 'b'.repeat(8) + '2'.repeat(56);
const C = 'c'.repeat(8) + '3'.repeat(56);
const D = 'd'.repeat(8) + '4'.repeat(56);

test.serial('as netavark\'s aardvark-dns: run returns once it listens, scopes by the asker, reloads on SIGHUP and ends with its last network', async (t) => {
  // Every address is on loopback (all of 127/8 is local): gateways 127.6x.N.1, containers after.
  const n = randomInt(1, 250);
  const [g1, g2] = [`127.61.${n}.1`, `127.62.${n}.1`];
  const [a1, b1, b2, c2, d2] = [`127.61.${n}.2`, `127.61.${n}.3`, `127.62.${n}.3`, `127.62.${n}.4`, `127.62.${n}.5`];
  const up = await startUpstream(t, { behaviour: 'answer' });
  const own = await startUpstream(t, { behaviour: 'answer' });
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-aardvark-'));
  const port = randomInt(20_000, 60_000);
  let pid = 0;
  t.teardown(() => {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const net1 = `${g1} ${up.label}\n${A} ${a1}  alpha,${A.slice(0, 12)} ${own.label}\n${B} ${b1}  bravo,${B.slice(0, 12)},b\n`;
  const net2 = `${g2}\n${B} ${b2}  bravo,${B.slice(0, 12)}\n${C} ${c2}  charlie,${C.slice(0, 12)}\n`;
  writeFileSync(join(dir, 'net1'), net1);
  writeFileSync(join(dir, 'net2'), net2);

  // execFile waits for the launcher's stdout and stderr to close: a daemon holding them would hang it.
  const launched = await run(BIN, ['--config', dir, '-p', String(port), 'run'], { timeout: 10_000 });
  t.is(launched.stderr, '');
  const pidText = readFileSync(join(dir, 'aardvark.pid'), 'utf8');
  t.regex(pidText, /^\d+$/, 'the pid file has the pid and no newline');
  pid = Number(pidText);
  t.true(alive(pid));

  const ask = (server: string, from: string, name: string, ...args: string[]) => digAt(server, port, '-b', from, name, ...args);
  // A container sees the names of every network it is on, whichever gateway it asks.
  t.deepEqual(datas(await ask(g1, b1, 'charlie')), [c2]);
  t.deepEqual(datas(await ask(g1, b1, 'charlie.dns.podman')), [c2], 'the search domain is stripped');
  // On a network it shares with bravo, alpha gets bravo's address there only, and nothing of net2.
  t.deepEqual(datas(await ask(g1, a1, 'bravo')), [b1]);
  t.deepEqual(datas(await ask(g1, a1, B.slice(0, 12))), [b1], 'the short id');
  t.deepEqual(datas(await ask(g1, a1, 'b')), [b1], 'an alias');
  t.is((await ask(g1, a1, 'charlie')).status, 'NXDOMAIN');
  t.is((await ask(g1, a1, 'nobody.dns.podman')).status, 'NXDOMAIN', 'nothing under the search domain is forwarded');
  // An asker that is no container sees the network it asked on.
  t.deepEqual(datas(await ask(g2, '127.0.0.1', 'charlie')), [c2]);
  t.is((await ask(g2, '127.0.0.1', 'alpha')).status, 'NXDOMAIN');
  // Other names go to the asker's own servers (alpha's fifth column), else to those of its
  // networks (line 1) whichever gateway it asked, else the host's: here upstreams of the test's own on loopback.
  const far = await ask(g1, a1, 'www.example.com');
  t.is(far.status, 'NOERROR');
  t.true(far.answers.length > 0);
  t.deepEqual([own.udpQueries, up.udpQueries], [1, 0], 'alpha\'s own server was asked');
  t.is((await ask(g2, b2, 'www.example.org')).status, 'NOERROR');
  t.deepEqual([own.udpQueries, up.udpQueries], [1, 1], 'bravo, asking on net2 (no servers), went to net1\'s');
  t.deepEqual(datas(await ask(g1, a1, 'alpha', 'AAAA')), [], 'a known name without IPv6: NOERROR and no answer');
  t.is((await ask(g1, a1, 'alpha', 'AAAA')).status, 'NOERROR');

  // netavark appends a container and signals: the next query has it; a broken file leaves the rest
  // serving. Delta has two IPv4 addresses on net2 (podman gives one per subnet): both answer, and
  // either makes it the asker.
  const d2b = `127.62.${n}.6`;
  writeFileSync(join(dir, 'net2'), `${net2}${D} ${d2},${d2b}  delta,${D.slice(0, 12)}\n`);
  writeFileSync(join(dir, 'broken'), 'not-an-address\n');
  process.kill(pid, 'SIGHUP');
  await within(3000, 'delta answers after SIGHUP', async () => datas(await ask(g2, c2, 'delta')).sort().join() === [d2, d2b].sort().join());
  t.deepEqual(datas(await ask(g2, d2b, 'charlie')), [c2], 'asked from its second address, delta sees net2');
  t.deepEqual(datas(await ask(g2, c2, `${d2b.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR')), [`delta.net2.`]);
  t.deepEqual(datas(await ask(g1, b1, 'alpha')), [a1], 'net1 still serves');

  // The last network gone: the pid file goes and the process ends.
  for (const f of ['net1', 'net2', 'broken']) rmSync(join(dir, f));
  process.kill(pid, 'SIGHUP');
  await within(10_000, 'the server ends with its last network', async () => !alive(pid));
  t.false(existsSync(join(dir, 'aardvark.pid')));
});

test.serial('run with no network file fails at once, saying why, and leaves no process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-aardvark-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const err = await t.throwsAsync(run(BIN, ['--config', dir, '-p', String(randomInt(20_000, 60_000)), 'run'], { timeout: 10_000 }));
  t.regex((err as Error & { stderr: string }).stderr, /no network with a bind address in/);
  t.false(existsSync(join(dir, 'aardvark.pid')));
});

test.serial('--version and version answer as aardvark-dns\'s do; run without --config is refused', async (t) => {
  t.regex((await run(BIN, ['--version'])).stdout, /^tsnet-dns \d+\.\d+\.\d+\n$/);
  t.like(JSON.parse((await run(BIN, ['version'])).stdout), { compatible: 'aardvark-dns 1.4' });
  const err = await t.throwsAsync(run(BIN, ['run']));
  t.regex((err as Error & { stderr: string }).stderr, /run needs --config DIR/);
});
