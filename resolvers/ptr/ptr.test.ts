import test from 'ava';
import { ask, queryOf, Registry } from '../../test/helpers/resolve.js';
import { records } from '../../test/fixtures.js';
import { ptr } from './index.js';

const registry = Registry.fromRecords(records());

test('an IPv4 reverse name of a container answers name.network', async (t) => {
  const { packet, passed } = await ask(ptr, registry, queryOf('2.0.30.172.in-addr.arpa', 'PTR'));
  t.false(passed);
  t.deepEqual(packet.answers?.map((a) => a.data), ['web.app']);
});

test('an IPv6 nibble reverse name answers name.network', async (t) => {
  const nibbles = 'fd000030000000000000000000000002'.split('').reverse().join('.');
  const { packet } = await ask(ptr, registry, queryOf(`${nibbles}.ip6.arpa`, 'PTR'));
  t.deepEqual(packet.answers?.map((a) => a.data), ['web.app']);
});

test('an address not in scope, or not ours, is passed on', async (t) => {
  t.true((await ask(ptr, registry, queryOf('9.9.9.9.in-addr.arpa', 'PTR'))).passed);
  t.true((await ask(ptr, registry, queryOf('2.0.30.172.in-addr.arpa', 'PTR'), { scope: registry.scope(['db']) })).passed);
  t.true((await ask(ptr, registry, queryOf('300.0.30.172.in-addr.arpa', 'PTR'))).passed);
});
