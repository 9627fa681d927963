import test from 'ava';
import { DnsMetrics } from './metrics.js';

test('query types and rcodes outside the known sets are counted as OTHER: an asker cannot grow the label set', async (t) => {
  const m = new DnsMetrics();
  for (let type = 0; type < 65536; type += 7) m.query(type, type % 4096, 'forward', 0.001);
  m.query(1, 0, 'local', 0.001);
  const lines = (await m.text()).split('\n').filter((l) => l.startsWith('tsnet_dns_queries_total{'));
  t.true(lines.length < 200, `${lines.length} series`);
  t.true(lines.some((l) => l.includes('type="OTHER",rcode="OTHER"')));
  t.true(lines.some((l) => l === 'tsnet_dns_queries_total{type="A",rcode="NOERROR",resolver="local"} 1'));
});
