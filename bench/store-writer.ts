// Spawned by bench/store.ts inside the LAN namespace (where etcd listens), with the store's URL:
// joins the cluster as node `bulk` and writes endpoints of its own under its lease, one command
// per stdin line, answering each with `ok <process.hrtime of the commit, ns>`:
//   bulk NETWORK_ID COUNT BASE  endpoints b0…b<COUNT-1>, addresses from BASE.128.0 up (BASE: 10.199)
//   put NETWORK_ID NAME IP      one endpoint of sandbox NAME
//   del NAME                    that endpoint again
// The lease (and every endpoint with it) ends when stdin closes.
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { endpointKey } from '../src/cluster/keys.js';
import { joinCluster } from '../src/cluster/nodes.js';
import type { EndpointObject } from '../src/cluster/objects.js';
import { EtcdStore, parseStoreUrl } from '../src/store/etcd-store.js';
import { writeInChunks, type Operation } from '../src/store/store.js';

const url = process.argv[2];
if (url === undefined) throw new Error('usage: store-writer STORE_URL');
const store = new EtcdStore({ hosts: parseStoreUrl(url) });
const member = await joinCluster(store, { name: 'bulk', address: '192.0.2.1', leaseTtl: 30 });
const hex = (): string => randomBytes(32).toString('hex');
const keys = new Map<string, string>();

const endpoint = (network: string, name: string, ipv4: string): Operation => {
  const ep: EndpointObject = { id: hex(), network, node: 'bulk', sandbox: { id: hex(), name, hostname: name }, ipv4, aliases: [] };
  const key = endpointKey(network, ep.id);
  keys.set(name, key);
  return { op: 'put', key, value: ep, lease: member.lease! };
};

async function run(line: string): Promise<void> {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === 'bulk') {
    const [network, count, base] = args as [string, string, string];
    await writeInChunks(store, Array.from({ length: Number(count) }, (_, i) => endpoint(network, `b${i}`, `${base}.${128 + (i >> 8)}.${i & 255}`)));
  } else if (cmd === 'put') {
    const [network, name, ip] = args as [string, string, string];
    await writeInChunks(store, [endpoint(network, name, ip)]);
  } else if (cmd === 'del') {
    await writeInChunks(store, [{ op: 'delete', key: keys.get(args[0]!)! }]);
  } else throw new Error(`store-writer: unknown command ${line}`);
  process.stdout.write(`ok ${process.hrtime.bigint()}\n`);
}

let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => void (queue = queue.then(() => run(line))));
lines.on('close', () => void queue.then(() => member.leave()).then(() => store.close()).then(() => process.exit(0)));
process.stdout.write('ready\n');
