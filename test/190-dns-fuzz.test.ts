import test from 'ava';
import dnsPacket from 'dns-packet';
import { fuzz } from '../bench/fuzz.js';
import { startDns } from './helpers/tsnet-dns.js';
import { query, udpAsk } from './helpers/raw.js';
import { records } from './fixtures.js';
import { rssMb } from '../bench/procs.js';


test('R1: 50k fuzzed datagrams and 500 fuzzed TCP streams: no crash, no reply to a response, none larger than the garbage it answers, RSS flat, a good query answered after', async (t) => {
  const dns = await startDns(t, records(), ['--log-level', 'info']);
  // Warm up first, so that the RSS compared is the server's steady state, not its start.
  await fuzz(dns.port, { datagrams: 5000, streams: 50, seed: 7 });
  const before = rssMb(dns.child.pid!);
  const report = await fuzz(dns.port, { datagrams: 50_000, streams: 500, seed: 42 });
  const after = rssMb(dns.child.pid!);
  t.log(`${report.datagrams} datagrams -> ${report.replies} replies, ${report.streams} streams -> ${report.streamReplies} replies, ${report.seconds.toFixed(1)} s; RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB`);
  t.deepEqual(report.violations, []);
  t.is(dns.child.exitCode, null, 'alive');
  t.true(report.replies > 10_000, 'well-formed datagrams were answered');
  t.true(report.streamReplies > 100, 'framed queries over TCP were answered');
  t.true(after - before < 30, `RSS grew ${(after - before).toFixed(1)} MB`);
  const good = await udpAsk(dns.port, query('web'), 2000);
  t.deepEqual(dnsPacket.decode(good!).answers!.map((a) => a.data), ['172.30.0.2']);
});
