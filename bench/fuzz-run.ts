// `npm run bench:fuzz`: R1 at full size against a real tsnet-dns (BENCH_DATAGRAMS, default 1 M;
// BENCH_STREAMS, default 5000). Prints the report and the server's RSS before and after.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { fuzz } from './fuzz.js';
import { rssMb, startPinned, waitForDns } from './procs.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const datagrams = Number(process.env.BENCH_DATAGRAMS ?? 1_000_000);
const streams = Number(process.env.BENCH_STREAMS ?? 5000);
const dir = mkdtempSync(join(tmpdir(), 'tsnet-fuzz-'));
const records = join(dir, 'records.json');
writeFileSync(
  records,
  JSON.stringify({
    networks: [{ name: 'app', subnet: '172.30.0.0/24' }],
    endpoints: [{ id: 'a'.repeat(64), name: 'web', networks: { app: { ipv4: '172.30.0.2', aliases: ['www'] } } }],
    services: [{ name: 'api', network: 'app', mode: 'vip', vip: '172.30.0.100', ports: [{ name: 'http', protocol: 'tcp', port: 80 }], tasks: [{ id: 'b'.repeat(25), ipv4: '172.30.0.11' }] }],
  }),
);
const port = 26000 + Math.floor(Math.random() * 2000);
const server = startPinned(0, process.execPath, [join(ROOT, 'bin/tsnet-dns'), '--records', records, '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', '--log-level', 'error']);
try {
  await waitForDns(port);
  await fuzz(port, { datagrams: 10_000, streams: 100, seed: 99 });
  const before = rssMb(server.pid!);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(server.pid!))), 250);
  const report = await fuzz(port, { datagrams, streams, seed: 1 });
  clearInterval(sampler);
  const after = rssMb(server.pid!);
  const alive = server.exitCode === null;
  const probe = await new Promise<boolean>((resolve) => {
    import('node:dgram').then(({ createSocket }) => {
      const s = createSocket('udp4');
      const timer = setTimeout(() => (s.close(), resolve(false)), 1000);
      s.on('message', (m) => (clearTimeout(timer), s.close(), resolve(JSON.stringify(dnsPacket.decode(m).answers ?? []).includes('172.30.0.2'))));
      s.send(dnsPacket.encode({ id: 9, type: 'query', questions: [{ name: 'web', type: 'A' }] }), port, '127.0.0.1');
    });
  });
  console.log(JSON.stringify({ ...report, violations: report.violations.length, rssBeforeMb: +before.toFixed(1), rssPeakMb: +peak.toFixed(1), rssAfterMb: +after.toFixed(1), alive, answersAfter: probe }, null, 1));
  if (report.violations.length > 0 || !alive || !probe) {
    console.error(report.violations.join('\n'));
    process.exitCode = 1;
  }
} finally {
  server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
