import { ADDRESSES, addressesOf, addressKey, ENDPOINTS, NETWORKS, networkKey, networkNameKey, sandboxesOf, serviceKey, SERVICES, serviceNameKey, subnetKey, TASKS, tasksOf, TUNNELS, vniKey } from '../cluster/keys.js';
import type { AddressClaim, EndpointObject, NetworkObject, ServiceObject, TaskObject, TunnelClaim, VniClaim } from '../cluster/objects.js';
import type { Condition, Operation, Store } from '../store/store.js';
import { conflict } from './errors.js';
import type { DaemonState } from './state.js';

/**
 * The transactions that write what every node shares: a network with its name (and the IPAM
 * claims that come with it), a service with its name. A name is claimed by a CAS create of its
 * key, so two nodes creating the same name at once get one winner and one 409.
 */

const nameKeyOf = (n: NetworkObject): string => networkNameKey(n.name, n.scope === 'local' ? n.node : undefined);

export const networkPuts = (n: NetworkObject): Operation[] => [
  { op: 'put', key: networkKey(n.id), value: n },
  { op: 'put', key: nameKeyOf(n), value: n.id },
  ...(n.vni === undefined ? [] : [{ op: 'put', key: vniKey(n.vni), value: { network: n.id } satisfies VniClaim } satisfies Operation]),
];

/**
 * What a new network must find free: its name where it lives (its node for a local one, the
 * cluster for a swarm one), and an overlay's VNI.
 */
export const networkClaims = (n: NetworkObject): Condition[] => [{ key: nameKeyOf(n), modRevision: 0 }, ...(n.vni === undefined ? [] : [{ key: vniKey(n.vni), modRevision: 0 }])];

/** Throws the 409 a lost name race deserves, when that is why a network's transaction failed. */
export async function explainNetworkConflict(store: Store, n: NetworkObject): Promise<void> {
  if ((await store.get(nameKeyOf(n))) !== undefined) throw conflict(`network with name ${n.name} already exists`);
}

/** Deletes a network with its name, its subnet claims and every address claimed on it. */
export async function networkDeletes(store: Store, n: NetworkObject): Promise<Operation[]> {
  const claims = (await store.list(addressesOf(n.id))).kvs.map((kv): Operation => ({ op: 'delete', key: kv.key }));
  const subnets = n.ipam === null ? [] : [n.ipam.subnet, ...(n.ipam.subnet6 === undefined ? [] : [n.ipam.subnet6])];
  return [
    { op: 'delete', key: networkKey(n.id) },
    { op: 'delete', key: nameKeyOf(n) },
    ...subnets.map((s): Operation => ({ op: 'delete', key: subnetKey(s) })),
    ...(n.vni === undefined ? [] : [{ op: 'delete', key: vniKey(n.vni) } satisfies Operation]),
    ...claims,
  ];
}

export const servicePuts = (svc: ServiceObject): Operation[] => [
  { op: 'put', key: serviceKey(svc.id), value: svc },
  { op: 'put', key: serviceNameKey(svc.name), value: svc.id },
];

export const serviceNameFree = (svc: ServiceObject): Condition => ({ key: serviceNameKey(svc.name), modRevision: 0 });

/** A service, its name, its VIP's claim and every task of it, whichever node runs them. */
export async function serviceDeletes(store: Store, svc: ServiceObject, networkId: string | undefined): Promise<Operation[]> {
  const tasks = (await store.list(tasksOf(svc.id))).kvs.map((kv): Operation => ({ op: 'delete', key: kv.key }));
  return [
    { op: 'delete', key: serviceKey(svc.id) },
    { op: 'delete', key: serviceNameKey(svc.name) },
    ...(svc.vip === undefined || networkId === undefined ? [] : [{ op: 'delete', key: addressKey(networkId, svc.vip) } satisfies Operation]),
    ...tasks,
  ];
}

/** What a state file from before the store shared: its networks (as `node`'s) and services, with their names. */
export function legacyShared(state: DaemonState, node: string): Operation[] {
  return [
    ...state.networks.flatMap((n) => networkPuts({ ...n, scope: 'local', node })),
    ...(state.services ?? []).flatMap(({ tasks: _tasks, ...svc }) => servicePuts({ ...svc, networkId: state.networks.find((n) => n.name === svc.network)?.id })),
  ];
}

/**
 * What a node that is gone for good leaves in the store, to delete (`tsnet node rm`): the
 * addresses it claimed on swarm networks (kept past its lease, since a node cut off may still
 * run what holds them), its tunnel address, its sandbox records, its local networks with their
 * names and subnets, and any endpoint or task of it a lease has not taken yet.
 */
export async function nodeLeftovers(store: Store, node: string): Promise<Operation[]> {
  const [addresses, sandboxes, networks, endpoints, tasks, services, tunnels] = await Promise.all([ADDRESSES, sandboxesOf(node), NETWORKS, ENDPOINTS, TASKS, SERVICES, TUNNELS].map((p) => store.list(p)));
  const del = (key: string): Operation => ({ op: 'delete', key });
  const its = <T extends { node?: string }>(kvs: { key: string; value: unknown }[]): { key: string; value: T }[] => (kvs as { key: string; value: T }[]).filter((kv) => kv.value.node === node);
  const local = its<NetworkObject>(networks!.kvs).filter((kv) => kv.value.scope === 'local');
  const localIds = new Set(local.map((kv) => kv.value.id));
  // A service on one of its local networks was that node's alone; it goes with them (its VIP's claim with the network's).
  const onLocal = (services!.kvs as { value: ServiceObject }[]).filter((kv) => kv.value.networkId !== undefined && localIds.has(kv.value.networkId));
  return dedupe([
    ...its<AddressClaim>(addresses!.kvs).map((kv) => del(kv.key)),
    ...its<TunnelClaim>(tunnels!.kvs).map((kv) => del(kv.key)),
    ...sandboxes!.kvs.map((kv) => del(kv.key)),
    ...its<EndpointObject>(endpoints!.kvs).map((kv) => del(kv.key)),
    ...its<TaskObject>(tasks!.kvs).map((kv) => del(kv.key)),
    ...(await Promise.all(onLocal.map((kv) => serviceDeletes(store, kv.value, undefined)))).flat(),
    ...(await Promise.all(local.map((kv) => networkDeletes(store, kv.value)))).flat(),
  ]);
}

/** One delete per key: a transaction may not name a key twice (etcd refuses it), and a task can be both the node's and its service's. */
const dedupe = (ops: Operation[]): Operation[] => [...new Map(ops.map((op) => [op.key, op])).values()];
