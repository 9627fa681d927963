import test from 'ava';
import { chainOf, PLUGINS } from '../../resolvers/index.js';
import { Registry } from '../registry/registry.js';
import { Rcode } from '../wire/constants.js';
import { dig } from '../../test/helpers/dig.js';
import { rcodeReply, type ResolverPlugin } from './resolver.js';
import { createServer } from './server.js';

/** A plugin that answers NXDOMAIN for the names in `names`, which a test changes as it goes. */
const blocking = (names: Set<string>, bypassable = false): ResolverPlugin => ({
  name: 'block',
  setup: () => ({
    name: 'block',
    ...(bypassable ? { bypassable } : {}),
    resolve: (q, _ctx, next) => (names.has(q.name) ? rcodeReply(q, Rcode.NXDOMAIN, 'block') : next()),
  }),
});

const registry = (): Registry =>
  Registry.fromRecords({ networks: [{ name: 'app', subnet: '172.30.0.0/24' }], endpoints: [{ id: 'a1b2c3d4e5f6', name: 'web', networks: { app: { ipv4: '172.30.0.2' } } }] });

test('a plugin runs right before the built-in that follows it in the list, built-ins keep their order', (t) => {
  const p = blocking(new Set());
  t.deepEqual(chainOf(['forward', p, 'local', 'services']).map((r) => r.name), ['block', 'local', 'services', 'forward']);
  t.deepEqual(chainOf(['local', 'forward', p]).map((r) => r.name), ['local', 'forward', 'block']);
  t.deepEqual(chainOf(['local', p, 'cache', 'forward']).map((r) => r.name), ['local', 'block', 'cache', 'forward']);
  t.is(chainOf(['local'])[0], PLUGINS.local);
});

test('a resolver list with an unknown name, a name twice or a plugin without setup is refused, naming it', (t) => {
  t.throws(() => chainOf(['local', 'nope']), { message: /unknown resolver "nope"/ });
  t.throws(() => chainOf(['local', { ...blocking(new Set()), name: 'local' }]), { message: /"local" is listed twice/ });
  t.throws(() => chainOf([{ name: 'x' } as unknown as ResolverPlugin]), { message: /plugin "x": a plugin needs a name and a setup/ });
});

test('a registry answer is not replayed past a plugin before it that decides by its own list', async (t) => {
  const names = new Set<string>();
  const server = createServer({ registry: registry(), upstreams: [], resolvers: [blocking(names), 'local'] });
  t.teardown(() => server.close());
  const { port } = await server.listen({ address: '127.0.0.1', port: 0, scope: ['app'] });
  for (let i = 0; i < 3; i++) t.deepEqual((await dig(port, 'web')).answers.map((a) => a.data), ['172.30.0.2']);
  names.add('web');
  t.is((await dig(port, 'web')).status, 'NXDOMAIN', 'the plugin is asked again, not skipped by a stored answer');
});

test('a plugin that says it is bypassable lets registry answers be replayed (as the built-ins do)', async (t) => {
  const names = new Set<string>();
  const server = createServer({ registry: registry(), upstreams: [], resolvers: [blocking(names, true), 'local'] });
  t.teardown(() => server.close());
  const { port } = await server.listen({ address: '127.0.0.1', port: 0, scope: ['app'] });
  for (let i = 0; i < 2; i++) t.deepEqual((await dig(port, 'web')).answers.map((a) => a.data), ['172.30.0.2']);
  names.add('web');
  // It promised its answer depends on the registry alone, so the stored answer stands until the registry changes.
  t.deepEqual((await dig(port, 'web')).answers.map((a) => a.data), ['172.30.0.2']);
});
