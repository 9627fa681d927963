import test from 'ava';
import { createServer, Registry } from '../src/index.js';
import { testNetns } from './helpers/netns.js';

const doc = {
  networks: [{ name: 'front' }, { name: 'back' }],
  endpoints: [
    { id: 'aaaaaaaaaaaa', name: 'web', networks: { front: { ipv4: '10.91.0.2' } } },
    { id: 'bbbbbbbbbbbb', name: 'db', networks: { back: { ipv4: '10.92.0.2' } } },
  ],
};

test('a listener at 127.0.0.11:53 inside a namespace answers dig over UDP and TCP, and getent through glibc', async (t) => {
  const ns = await testNetns(t);
  const server = createServer({ registry: Registry.fromRecords(doc), upstreams: [], resolvers: ['local', 'services', 'ptr'] });
  t.teardown(() => server.close());
  await server.listen({ address: '127.0.0.11', port: 53, netns: ns.path });
  t.is((await ns.exec('dig', '@127.0.0.11', '+short', 'web')).trim(), '10.91.0.2');
  t.is((await ns.exec('dig', '@127.0.0.11', '+tcp', '+short', 'db')).trim(), '10.92.0.2');
  t.regex(await ns.exec('getent', 'hosts', 'web'), /^10\.91\.0\.2\s+web/);
});

test('each namespace\'s listener sees only its scope', async (t) => {
  const a = await testNetns(t);
  const b = await testNetns(t);
  const server = createServer({ registry: Registry.fromRecords(doc), upstreams: [], resolvers: ['local', 'services', 'ptr'] });
  t.teardown(() => server.close());
  await server.listen({ address: '127.0.0.11', port: 53, netns: a.path, scope: ['front'] });
  await server.listen({ address: '127.0.0.11', port: 53, netns: b.path, scope: ['back'] });
  t.is((await a.exec('dig', '@127.0.0.11', '+short', 'web')).trim(), '10.91.0.2');
  t.regex(await a.exec('dig', '@127.0.0.11', 'db'), /status: REFUSED/);
  t.is((await b.exec('dig', '@127.0.0.11', '+short', 'db')).trim(), '10.92.0.2');
  t.regex(await b.exec('dig', '@127.0.0.11', 'web'), /status: REFUSED/);
});

test('nothing is bound to 127.0.0.11 in the host namespace', async (t) => {
  const ns = await testNetns(t);
  const server = createServer({ registry: Registry.fromRecords(doc), upstreams: [] });
  t.teardown(() => server.close());
  await server.listen({ address: '127.0.0.11', port: 53, netns: ns.path });
  const { run } = await import('./helpers/netns.js');
  t.regex(await ns.exec('ss', '-Hlun', 'src', '127.0.0.11'), /127\.0\.0\.11:53/, 'control: the same query sees the listener inside the namespace');
  const { stdout } = await run('ss', ['-Hlun', 'src', '127.0.0.11']);
  t.is(stdout.trim(), '');
});

test('a missing namespace is an error naming it', async (t) => {
  const server = createServer({ registry: new Registry(), upstreams: [] });
  t.teardown(() => server.close());
  await t.throwsAsync(server.listen({ address: '127.0.0.11', port: 53, netns: '/run/netns/tsnet-does-not-exist' }), { message: /tsnet-does-not-exist/ });
});
