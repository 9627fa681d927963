import test from 'ava';
import { ask, queryOf, Registry } from '../../test/helpers/resolve.js';
import { id, records } from '../../test/fixtures.js';
import { local } from './index.js';

const registry = Registry.fromRecords(records());

test('answers a container name with its address, authoritatively', async (t) => {
  const { packet, passed } = await ask(local, registry, queryOf('web'));
  t.false(passed);
  t.deepEqual(packet.answers?.map((a) => a.data), ['172.30.0.2']);
  t.true(packet.flag_aa);
});

test('answers aliases, the hostname, the short id and name.network', async (t) => {
  for (const name of ['www', 'webhost', id('a').slice(0, 12), 'web.app', 'www.app']) {
    const { packet } = await ask(local, registry, queryOf(name));
    t.deepEqual(packet.answers?.map((a) => a.data), ['172.30.0.2'], name);
  }
});

test('a known name with no record of the type is NODATA, not passed on', async (t) => {
  const { packet, passed } = await ask(local, registry, queryOf('web2', 'AAAA'));
  t.false(passed);
  t.is(packet.rcode, 'NOERROR');
  t.is(packet.answers?.length, 0);
});

test('an unknown name, a service name and another class pass to the next resolver', async (t) => {
  t.true((await ask(local, registry, queryOf('nobody'))).passed);
  t.true((await ask(local, registry, queryOf('api'))).passed);
});

test('only the scope\'s networks are seen', async (t) => {
  const scope = registry.scope(['db']);
  t.true((await ask(local, registry, queryOf('web'), { scope })).passed);
  t.deepEqual((await ask(local, registry, queryOf('pg'), { scope })).packet.answers?.map((a) => a.data), ['172.31.0.2']);
});

test('a network with dns off resolves nothing', async (t) => {
  const doc = records();
  (doc.networks[0] as { dns?: boolean }).dns = false;
  const r = Registry.fromRecords(doc);
  t.true((await ask(local, r, queryOf('web'))).passed);
});
