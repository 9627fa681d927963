import test from 'ava';
import { createSocket } from 'node:dgram';
import { renameSync, writeFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { query } from './helpers/raw.js';
import { startDns } from './helpers/tsnet-dns.js';
import { records } from './fixtures.js';

/** Version `v` of the records: `moving` at one of two addresses, and a name of its own so that every version differs. */
function doc(v: number) {
  const d = records();
  d.endpoints.push({ id: 'ab'.repeat(32), name: 'moving', networks: { app: { ipv4: `172.30.0.${50 + (v % 2)}` } } } as never);
  d.endpoints.push({ id: 'cd'.repeat(32), name: `version${v}`, networks: { db: { ipv4: '172.31.0.99' } } } as never);
  return JSON.stringify(d);
}

/** What a name may be answered with while the file churns; anything else is a wrong answer. */
const ALLOWED: Record<string, readonly string[]> = {
  web: ['172.30.0.2'],
  www: ['172.30.0.2'],
  moving: ['172.30.0.50', '172.30.0.51'],
};
const NAMES = Object.keys(ALLOWED);

test('reload under load: 20k qps while the records file is rewritten 200 times (valid, broken, null, partial, renamed): no wrong answer, no SERVFAIL for names that never went away', async (t) => {
  const dns = await startDns(t, JSON.parse(doc(0)), ['--log-level', 'info']);
  const client = createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  t.teardown(() => client.close());
  let sent = 0;
  let answered = 0;
  let answeredDuringChurn = 0;
  let churning = false;
  const wrong: string[] = [];
  client.on('message', (m) => {
    const p = dnsPacket.decode(m);
    // Judged by the question it answers, not by ID: IDs wrap every 3 s at this rate.
    const name = p.questions![0]!.name;
    answered++;
    if (churning) answeredDuringChurn++;
    const ips = (p.answers ?? []).map((a) => String(a.data));
    if (p.rcode !== 'NOERROR' || ips.length !== 1 || !ALLOWED[name]?.includes(ips[0]!)) wrong.push(`${name}: ${p.rcode} ${ips.join(',')}`);
  });
  // 20 queries every millisecond, caught up by the clock so timer slack does not lower the rate.
  const started = performance.now();
  const load = setInterval(() => {
    const due = Math.floor((performance.now() - started) * 20);
    for (; sent < due; sent++) {
      const id = sent % 65536;
      client.send(query(NAMES[sent % NAMES.length]!, 'A', id), dns.port, '127.0.0.1');
    }
  }, 1);
  t.teardown(() => clearInterval(load));
  await new Promise((r) => setTimeout(r, 300));
  churning = true;
  const tmp = `${dns.records}.tmp`;
  for (let i = 0; i < 200; i++) {
    switch (i % 5) {
      case 0:
        writeFileSync(dns.records, doc(i));
        break;
      case 1:
        writeFileSync(dns.records, '{"networks": [');
        break;
      case 2:
        writeFileSync(dns.records, 'null');
        break;
      case 3: {
        const full = doc(i);
        writeFileSync(dns.records, full.slice(0, full.length / 2));
        await new Promise((r) => setTimeout(r, 3));
        writeFileSync(dns.records, full);
        break;
      }
      default:
        writeFileSync(tmp, doc(i));
        renameSync(tmp, dns.records);
    }
    // Every other rewrite is followed by SIGHUP at once, so reloads also land on half-written
    // files and between a write and its rename, not only after the watcher's quiet time.
    if (i % 2 === 1) dns.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 20));
  }
  churning = false;
  writeFileSync(dns.records, doc(1001));
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(load);
  await new Promise((r) => setTimeout(r, 300));
  const seconds = (performance.now() - started) / 1000;
  const reloads = dns.logs.filter((l) => l.msg === 'records loaded').length;
  const refused = dns.logs.filter((l) => l.msg === 'records refused; keeping the last good state').length;
  t.log(`${sent} queries in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)} qps), ${answered} answered (${answeredDuringChurn} during the rewrites), ${reloads} reloads, ${refused} refused files`);
  t.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong answers`);
  // UDP on a loaded 2-core machine loses some (logged above); what matters is that the load
  // overlapped the rewrites and nothing answered was wrong.
  t.true(answeredDuringChurn > 10_000, 'the load overlapped the rewrites');
  t.true(reloads >= 30 && refused >= 30, 'good files were loaded and bad ones refused while the load ran');
});
