import test from 'ava';
import { Registry } from '../../src/registry/registry.js';
import { createServer } from '../../src/server/server.js';
import { datas, dig } from '../../test/helpers/dig.js';
import { startUpstream } from '../../test/helpers/upstream.js';
import { parseUpstream } from '../../src/server/upstreams.js';
import { podman, type PodmanOptions } from './index.js';

const records = {
  networks: [{ name: 'pub' }, { name: 'priv' }],
  endpoints: [
    { id: 'a1b2c3d4e5f6', name: 'web', networks: { pub: { ipv4: '127.81.0.2' } } },
    { id: 'b1b2c3d4e5f6', name: 'vault', networks: { priv: { ipv4: '127.81.1.2' } } },
  ],
};

async function serve(t: Parameters<Parameters<typeof test>[1]>[0], scope: string[], o: Partial<PodmanOptions> = {}) {
  const up = await startUpstream(t, { behaviour: 'answer' });
  const server = createServer({
    registry: Registry.fromRecords(records),
    upstreams: [parseUpstream(up.label)],
    resolvers: ['local', 'ptr', podman({ domain: 'dns.podman', internal: () => new Set(['priv']), noProxy: false, ...o }), 'forward'],
  });
  t.teardown(() => server.close());
  const { port } = await server.listen({ address: '127.0.0.1', port: 0, scope });
  return { port, up };
}

test('a name under the search domain answers as the bare name; nothing else under it exists', async (t) => {
  const { port, up } = await serve(t, ['pub']);
  t.deepEqual(datas(await dig(port, 'web.dns.podman')), ['127.81.0.2']);
  t.deepEqual(datas(await dig(port, 'WEB.DNS.PODMAN')), ['127.81.0.2'], 'case-insensitive');
  t.is((await dig(port, 'nobody.dns.podman')).status, 'NXDOMAIN');
  t.is((await dig(port, 'dns.podman')).status, 'NXDOMAIN');
  t.is(up.udpQueries, 0, 'none of it was forwarded');
});

test('single labels are NXDOMAIN here, other names are forwarded', async (t) => {
  const { port, up } = await serve(t, ['pub']);
  t.is((await dig(port, 'nosuchhost')).status, 'NXDOMAIN');
  t.is(up.udpQueries, 0);
  t.is((await dig(port, 'www.example.com')).status, 'NOERROR');
  t.is(up.udpQueries, 1);
});

test('an asker only on internal networks, or with AARDVARK_NO_PROXY, has nothing forwarded', async (t) => {
  const internal = await serve(t, ['priv']);
  t.deepEqual(datas(await dig(internal.port, 'vault')), ['127.81.1.2'], 'its own network\'s names still answer');
  t.is((await dig(internal.port, 'www.example.com')).status, 'NXDOMAIN');
  const noProxy = await serve(t, ['pub'], { noProxy: true });
  t.is((await dig(noProxy.port, 'www.example.com')).status, 'NXDOMAIN');
  t.is(internal.up.udpQueries + noProxy.up.udpQueries, 0);
});
