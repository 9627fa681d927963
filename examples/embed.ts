// tsnet's resolver inside a program of its own: names from a registry, the built-in chain with
// a plugin of the program's (a blocklist), one listener. `node dist/examples/embed.js` (PORT=0
// picks a free port); the README walks through it.
import { createServer, Rcode, rcodeReply, Registry, type ResolverPlugin } from 'tsnet-dns';

const blocked = new Set(['ads.example.com']);
const blocklist: ResolverPlugin = {
  name: 'blocklist',
  setup: () => ({
    name: 'blocklist',
    resolve: (q, _ctx, next) =>
      blocked.has(q.name) ? rcodeReply(q, Rcode.NXDOMAIN, 'blocklist') : next(),
  }),
};

const registry = Registry.fromRecords({
  networks: [{ name: 'app', subnet: '172.30.0.0/24' }],
  endpoints: [{ id: 'a1b2c3d4e5f6', name: 'web', networks: { app: { ipv4: '172.30.0.2', aliases: ['www'] } } }],
});
// Container names first, then the blocklist, then the upstreams (none here: other names get SERVFAIL).
const server = createServer({ registry, upstreams: [], resolvers: ['local', blocklist, 'forward'] });
const listener = await server.listen({ address: '127.0.0.1', port: Number(process.env.PORT ?? 5353), scope: ['app'] });
console.log(`listening on ${listener.address}:${listener.port}`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
