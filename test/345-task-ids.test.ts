import test from 'ava';
import { datas, dig } from './helpers/dig.js';
import { startDns } from './helpers/tsnet-dns.js';
import { records } from './fixtures.js';

const NO_FORWARD = ['--resolvers', 'local,services,ptr'];

test('a records file with Swarm task ids (25 lowercase base-36) is served: tasks.<svc> and each task name resolve', async (t) => {
  const doc = records();
  doc.services[0]!.tasks = [
    { id: '8t5r8cr0f0h6k2c3k7ih4l6f5', ipv4: '172.30.0.11' },
    { id: 'zq0lqm2v6rj1x4c8ekd9tn3ua', ipv4: '172.30.0.12' },
    { id: '7', ipv4: '172.30.0.13' },
  ];
  const dns = await startDns(t, doc, NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, 'tasks.api')).sort(), ['172.30.0.11', '172.30.0.12', '172.30.0.13']);
  t.deepEqual(datas(await dig(dns.port, 'api.8t5r8cr0f0h6')), ['172.30.0.11'], 'the default task name uses the first 12 of the id');
  t.deepEqual(datas(await dig(dns.port, 'api.7')), ['172.30.0.13']);
});

test('task ids that are not 1-64 lowercase letters and digits, and endpoint ids that are not hex, are refused with the field named', async (t) => {
  const doc = records();
  doc.services[0]!.tasks[0]!.id = '8T5R8CR0F0H6K2C3K7IH4L6F5';
  const dns = await startDns(t, doc, NO_FORWARD).then(
    () => 'started',
    (err: Error) => err.message,
  );
  t.regex(dns, /services\[0\]\.tasks\[0\]\.id: "8T5R8CR0F0H6K2C3K7IH4L6F5" is not a task id/);
  const endpoint = records();
  endpoint.endpoints[0]!.id = '8t5r8cr0f0h6k2c3k7ih4l6f5';
  const refused = await startDns(t, endpoint, NO_FORWARD).then(
    () => 'started',
    (err: Error) => err.message,
  );
  t.regex(refused, /endpoints\[0\]\.id: "8t5r8cr0f0h6k2c3k7ih4l6f5" is not an id of 12 to 64 hex digits/);
});
