import test from 'ava';
import { utimesSync, writeFileSync } from 'node:fs';
import { datas, dig } from './helpers/dig.js';
import { startDns } from './helpers/tsnet-dns.js';
import { id, records } from './fixtures.js';

const NO_FORWARD = ['--resolvers', 'local,services,ptr'];

/** Asks until `check` holds or two seconds pass; reloads are asynchronous to the writer. */
async function eventually(ask: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (await ask()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

test('editing the records file changes the next answers', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, 'web')), ['172.30.0.2'], 'warm the replay cache');
  const doc = records();
  doc.endpoints[0]!.networks.app!.ipv4 = '172.30.0.99';
  doc.endpoints.push({ id: id('9'), name: 'newcomer', networks: { app: { ipv4: '172.30.0.98' } } } as never);
  dns.writeRecords(doc);
  t.true(await eventually(async () => datas(await dig(dns.port, 'web')).join() === '172.30.0.99'));
  t.deepEqual(datas(await dig(dns.port, 'newcomer')), ['172.30.0.98']);
});

test('a task turning unhealthy leaves the answers at the next query', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, 'tasks.api')), ['172.30.0.11', '172.30.0.12']);
  const doc = records();
  doc.services[0]!.tasks[0]!.healthy = false;
  dns.writeRecords(doc);
  t.true(await eventually(async () => datas(await dig(dns.port, 'tasks.api')).join() === '172.30.0.12'));
});

test('a broken records file is refused with the field named, and the old answers stay', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const doc = records();
  (doc.endpoints[3]!.networks as Record<string, { ipv4: string }>)['lo-a']!.ipv4 = '300.1.1.1';
  dns.writeRecords(doc);
  const refused = await dns.waitForLog((l) => l.msg === 'records refused; keeping the last good state');
  t.regex(String(refused.err), /endpoints\[3\]\.networks\.lo-a\.ipv4: "300\.1\.1\.1" is not an IPv4 address/);
  t.deepEqual(datas(await dig(dns.port, 'web')), ['172.30.0.2']);
  writeFileSync(dns.records, '{ "networks": [ ');
  await dns.waitForLog((l) => l.msg === 'records refused; keeping the last good state' && /JSON/.test(String(l.err)));
  t.deepEqual(datas(await dig(dns.port, 'web')), ['172.30.0.2']);
});

test('SIGHUP re-reads the records: under --no-watch an edit alone changes nothing until the signal', async (t) => {
  const dns = await startDns(t, records(), [...NO_FORWARD, '--no-watch']);
  // The control: a watching server on the same file, which must see the edit by itself.
  const watching = await startDns(t, null, [...NO_FORWARD, '--records', dns.records]);
  const loaded = (): number => dns.logs.filter((l) => l.msg === 'records loaded').length;
  const before = loaded();
  const doc = records();
  doc.endpoints[0]!.name = 'renamed';
  dns.writeRecords(doc);
  t.true(await eventually(async () => datas(await dig(watching.port, 'renamed')).join() === '172.30.0.2'), 'the watching server reloaded');
  t.is((await dig(dns.port, 'renamed')).status, 'REFUSED', 'the --no-watch server did not');
  t.is(loaded(), before);
  dns.child.kill('SIGHUP');
  t.true(await eventually(async () => datas(await dig(dns.port, 'renamed')).join() === '172.30.0.2'));
  t.is(loaded(), before + 1, 'one reload, the signal\'s');
  t.is((await dig(dns.port, 'web')).status, 'REFUSED');
});

test('SIGTERM shuts down cleanly with exit code 0', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const exited = new Promise<number | null>((resolve) => dns.child.once('exit', resolve));
  dns.child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('a records directory merges every *.json in it', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  writeFileSync(`${dns.dir}/extra.json`, JSON.stringify({ endpoints: [{ id: id('8'), name: 'extra', networks: { app: { ipv4: '172.30.0.77' } } }] }));
  // A second server reading the first one's directory: records.json plus extra.json.
  const dir = await startDns(t, null, [...NO_FORWARD, '--records', dns.dir]);
  t.deepEqual(datas(await dig(dir.port, 'extra')), ['172.30.0.77']);
  t.deepEqual(datas(await dig(dir.port, 'web')), ['172.30.0.2']);
});

test('a save that leaves the bytes as they were (touch, the same document written again) does not reload; a change then does', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const loaded = (): number => dns.logs.filter((l) => l.msg === 'records loaded').length;
  const before = loaded();
  dns.writeRecords(records());
  const now = new Date();
  utimesSync(dns.records, now, now);
  // The watcher's debounce is 50 ms; a reload, if there were one, would be logged well within this.
  await new Promise((r) => setTimeout(r, 600));
  t.is(loaded(), before, 'no reload for the same bytes');
  const doc = records();
  doc.endpoints[0]!.networks.app!.ipv4 = '172.30.0.77';
  dns.writeRecords(doc);
  t.true(await eventually(async () => datas(await dig(dns.port, 'web')).join() === '172.30.0.77'));
  t.is(loaded(), before + 1);
});
