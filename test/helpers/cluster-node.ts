// A node daemon reduced to its membership, for tests that kill it: joins the cluster on etcd and
// stays until killed, owning the keys named after its name. Prints `joined <lease>` once in.
//   node --import=tsx test/helpers/cluster-node.ts <etcd endpoints, comma-separated> <node name> <lease ttl s> [owned key…]
import { joinCluster } from '../../src/cluster/nodes.js';
import { EtcdStore } from '../../src/store/etcd-store.js';

const [endpoints = '', name = '', ttl = '3', ...keys] = process.argv.slice(2);
const store = new EtcdStore({ hosts: endpoints.split(',') });
const member = await joinCluster(store, { name, address: '127.0.0.1', leaseTtl: Number(ttl) });
for (const key of keys) await member.put(key, { node: name });
process.stdout.write(`joined ${member.lease}\n`);
setInterval(() => {}, 1 << 30);
