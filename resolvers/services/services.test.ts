import test from 'ava';
import { ask, queryOf, Registry } from '../../test/helpers/resolve.js';
import { records } from '../../test/fixtures.js';
import { services } from './index.js';

const registry = Registry.fromRecords(records());
const datas = (p: { answers?: { data?: unknown }[] }): unknown[] => (p.answers ?? []).map((a) => a.data);

test('vip mode answers the VIP; dnsrr answers every serving task', async (t) => {
  t.deepEqual(datas((await ask(services, registry, queryOf('api'))).packet), ['172.30.0.100']);
  t.deepEqual(datas((await ask(services, registry, queryOf('cache'))).packet).sort(), ['172.30.0.21', '172.30.0.22', '172.30.0.23']);
});

test('tasks.<svc> leaves out unhealthy and draining tasks', async (t) => {
  t.deepEqual(datas((await ask(services, registry, queryOf('tasks.api'))).packet).sort(), ['172.30.0.11', '172.30.0.12']);
  t.deepEqual(datas((await ask(services, registry, queryOf('tasks.cache'))).packet).sort(), ['172.30.0.21', '172.30.0.22', '172.30.0.23']);
});

test('updateTask takes a task out of every answer and puts it back', async (t) => {
  const r = Registry.fromRecords(records());
  const task = records().services[1]!.tasks[0]!.id;
  r.updateTask('app', 'cache', task, { healthy: false });
  t.deepEqual(datas((await ask(services, r, queryOf('cache'))).packet).sort(), ['172.30.0.22', '172.30.0.23']);
  t.is((await ask(services, r, queryOf('_redis._tcp.cache', 'SRV'))).packet.answers?.length, 2);
  r.updateTask('app', 'cache', task, { healthy: true });
  t.is(datas((await ask(services, r, queryOf('cache'))).packet).length, 3);
});

test('SRV carries port, weight and target, with the target addresses as glue', async (t) => {
  const { packet } = await ask(services, registry, queryOf('_http._tcp.api', 'SRV'));
  t.deepEqual(datas(packet), [{ priority: 0, weight: 1, port: 80, target: 'api.app' }]);
  t.deepEqual(packet.additionals?.map((a) => [a.name, a.data]), [['api.app', '172.30.0.100']]);
});

test('weights: a task with weight 3 comes first about three times as often as one with weight 1', async (t) => {
  const doc = records();
  doc.services[1]!.tasks = [
    { id: 'aaaaaaaaaaaa', ipv4: '172.30.0.31', weight: 3 } as never,
    { id: 'bbbbbbbbbbbb', ipv4: '172.30.0.32', weight: 1 } as never,
  ];
  const r = Registry.fromRecords(doc);
  const first = new Map<unknown, number>();
  const { reply } = await ask(services, r, queryOf('cache'));
  const { shuffleRecords } = await import('../../src/server/shuffle.js');
  for (let i = 0; i < 4000; i++) {
    const copy = Buffer.from(reply.bytes);
    shuffleRecords(copy, reply.replayable!.shuffle!);
    const ip = copy.subarray(reply.replayable!.shuffle!.start + reply.replayable!.shuffle!.size - 4, reply.replayable!.shuffle!.start + reply.replayable!.shuffle!.size).join('.');
    first.set(ip, (first.get(ip) ?? 0) + 1);
  }
  const heavy = first.get('172.30.0.31') ?? 0;
  t.true(heavy > 2800 && heavy < 3200, `weight-3 task first ${heavy} of 4000 times`);
});
