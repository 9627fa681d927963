import { allocateAddress, freeAddresses, planSubnet, type AddressSpace, type HostSubnet, type PlannedSpace, type SubnetRequest } from '../net/ipam/ipam.js';
import { create, type Condition, type KeyValue, type Operation, type Store } from '../store/store.js';
import { addressKey, addressesOf, idOf, SUBNET_GUARD, subnetKey, subnetOfKey, SUBNETS, VNIS } from './keys.js';
import type { AddressClaim, SubnetClaim } from './objects.js';

/**
 * IPAM in the cluster store: the pure planning of src/net/ipam, made safe across nodes by CAS
 * creates of one key per subnet and per address. Subnet claims come as transaction pieces, so
 * the daemon writes a network, its name and its subnet in one transaction.
 */

const fail = (message: string, cause?: unknown): Error => new Error(`cluster/ipam: ${message}`, cause === undefined ? {} : { cause });

/** What a network asks of IPAM: an IPv4 subnet (given or from the default pools) and, optionally, a given IPv6 one. */
export interface SubnetClaimOptions {
  /** The network id the subnets are claimed for. */
  network: string;
  request: SubnetRequest;
  request6?: SubnetRequest;
  /** Subnets the host's own interfaces and routes use. */
  host?: readonly HostSubnet[];
  /** Spaces taken beyond the store's claims (those are always read). */
  existing?: readonly AddressSpace[];
}

/** A claim ready to commit: the planned spaces, and what the transaction must check and write. */
export interface SubnetClaimPlan {
  space: PlannedSpace;
  space6?: PlannedSpace;
  conditions: Condition[];
  operations: Operation[];
}

/**
 * Reads the claims and plans against them. The guard is read before the claims, so a claim
 * committed in between moves the guard and fails this plan's condition.
 */
export async function planSubnetClaim(store: Store, opts: SubnetClaimOptions): Promise<SubnetClaimPlan> {
  const guard = await store.get(SUBNET_GUARD);
  const { kvs } = await store.list<SubnetClaim>(SUBNETS);
  const claimed: AddressSpace[] = kvs.map((kv) => ({ network: kv.value.network, subnet: subnetOfKey(kv.key) }));
  const taken = [...(opts.existing ?? []), ...claimed];
  const plan = (request: SubnetRequest): PlannedSpace => {
    const holder = kvs.find((kv) => request.subnet !== undefined && kv.key === subnetKey(request.subnet));
    if (holder !== undefined) throw fail(`subnet ${request.subnet} is held by network ${holder.value.network}`);
    try {
      return planSubnet(opts.network, request, taken, { host: opts.host ?? [] });
    } catch (err) {
      throw fail(`network ${opts.network}: ${(err as Error).message}`, err);
    }
  };
  const spaces = [plan(opts.request), ...(opts.request6 === undefined ? [] : [plan(opts.request6)])];
  const claim: SubnetClaim = { network: opts.network };
  return {
    space: spaces[0]!,
    ...(spaces[1] === undefined ? {} : { space6: spaces[1] }),
    conditions: [{ key: SUBNET_GUARD, modRevision: guard?.modRevision ?? 0 }, ...spaces.map((s) => ({ key: subnetKey(s.subnet), modRevision: 0 }))],
    operations: [
      { op: 'put', key: SUBNET_GUARD, value: claim },
      ...spaces.flatMap((s): Operation[] => [
        { op: 'put', key: subnetKey(s.subnet), value: claim },
        { op: 'put', key: addressKey(opts.network, s.gateway), value: { holder: 'gateway' } satisfies AddressClaim },
      ]),
    ],
  };
}

/** True when every key still stands at the revision a condition expects (read key by key, not atomically). */
export async function conditionsHold(store: Store, conditions: readonly Condition[]): Promise<boolean> {
  const now = await Promise.all(conditions.map((c) => store.get(c.key)));
  return conditions.every((c, i) => (now[i]?.modRevision ?? 0) === c.modRevision);
}

/** Commits a claim's pieces (its conditions and operations) with the caller's own, in one transaction; true when it succeeded. */
export type ClaimCommit = (plan: SubnetClaimPlan) => Promise<boolean>;

/**
 * Plans and commits until a claim wins: after a lost race the next plan sees the winner's claim
 * and takes the next free pool block (or, for a given subnet, refuses it, naming the holder).
 * `commit` adds the caller's conditions and writes (the network and its name) to the same
 * transaction. When a commit fails while the claim's own conditions still hold, the failure was
 * the caller's: that is thrown, not retried, and the caller re-reads its keys to say why, e.g.
 *
 *   commit: async (plan) => {
 *     const r = await store.txn([...plan.conditions, { key: networkNameKey(name), modRevision: 0 }], [...plan.operations, ...mine(plan.space)]);
 *     if (!r.succeeded && (await store.get(networkNameKey(name))) !== undefined) throw new Error(`network ${name} exists`);
 *     return r.succeeded;
 *   }
 */
export async function claimSubnet(
  store: Store,
  opts: SubnetClaimOptions & { commit?: ClaimCommit; attempts?: number },
): Promise<SubnetClaimPlan> {
  const commit = opts.commit ?? (async (plan: SubnetClaimPlan) => (await store.txn(plan.conditions, plan.operations)).succeeded);
  const attempts = opts.attempts ?? 32;
  for (let i = 0; i < attempts; i++) {
    const plan = await planSubnetClaim(store, opts);
    if (await commit(plan)) return plan;
    if (await conditionsHold(store, plan.conditions)) throw fail(`the transaction claiming ${plan.space.subnet} for network ${opts.network} failed on a condition of its caller's`);
  }
  throw fail(`no subnet claimed for network ${opts.network} in ${attempts} attempts: other claims kept winning`);
}

export interface AddressClaimOptions {
  networkId: string;
  space: AddressSpace;
  /** `endpoint:<id>`, `vip:<service id>`. */
  holder: string;
  node?: string;
  requested?: string;
}

/**
 * Address keys being claimed right now through each store handle. Concurrent claims in one
 * process (a node starting many replicas) would otherwise all list the same addresses, try the
 * same lowest one and lose to each other; kept per handle so it needs no set-up and ends with it.
 */
const claiming = new WeakMap<Store, Set<string>>();

/**
 * Claims an address on a network: the requested one, or the lowest free (skipping those this
 * process is claiming meanwhile). Claimers in other processes still see the same lowest address,
 * so after each lost race a claimer picks at random among twice as many of the lowest free ones:
 * a burst of N settles in about log2(N) rounds, not N.
 */
export async function claimAddress(store: Store, opts: AddressClaimOptions): Promise<string> {
  const claim: AddressClaim = opts.node === undefined ? { holder: opts.holder } : { holder: opts.holder, node: opts.node };
  const mine = claiming.get(store) ?? new Set<string>();
  claiming.set(store, mine);
  for (let round = 0; round < 64; round++) {
    const ip = await candidate(store, opts, round, mine);
    const key = addressKey(opts.networkId, ip);
    mine.add(key);
    try {
      if (await create(store, key, claim)) return ip;
    } finally {
      mine.delete(key);
    }
    if (opts.requested !== undefined) {
      const holder = await store.get<AddressClaim>(key);
      throw fail(`address ${ip} on ${opts.space.network} is held by ${holder?.value.holder ?? 'a claim released since'}`);
    }
  }
  throw fail(`no address claimed on ${opts.space.network} in 64 rounds: other claims kept winning`);
}

/**
 * The address to try in this round: a requested one is only checked (its key's CAS tells whether
 * it is free). Store errors pass unwrapped, so a StoreUnavailableError stays one.
 */
async function candidate(store: Store, { networkId, space, requested }: AddressClaimOptions, round: number, claiming: ReadonlySet<string>): Promise<string> {
  const prefix = addressesOf(networkId);
  const inUse = new Set<string>();
  if (requested === undefined) {
    for (const kv of (await store.list(prefix)).kvs) inUse.add(idOf(kv.key));
    for (const key of claiming) if (key.startsWith(prefix)) inUse.add(idOf(key));
  }
  try {
    return requested !== undefined || round === 0 ? allocateAddress(space, inUse, requested) : pick(space, inUse, 2 ** Math.min(round, 6));
  } catch (err) {
    throw fail((err as Error).message, err);
  }
}

/** One of the `width` lowest free addresses, at random. */
function pick(space: AddressSpace, inUse: ReadonlySet<string>, width: number): string {
  const free: string[] = [];
  for (const ip of freeAddresses(space, inUse)) if (free.push(ip) >= width) break;
  if (free.length === 0) return allocateAddress(space, inUse);
  return free[Math.floor(Math.random() * free.length)]!;
}

/**
 * Deletes a claim if `holds` says it is the caller's: false when there was none, an error naming
 * the holder when it is someone else's. Conditioned on the revision read, so a claim re-made
 * in between is left alone.
 */
async function releaseClaim<T>(store: Store, key: string, holds: (value: T) => boolean, holderOf: (value: T) => string, extra: Operation[] = []): Promise<boolean> {
  const kv: KeyValue<T> | undefined = await store.get<T>(key);
  if (kv === undefined) return false;
  if (!holds(kv.value)) throw fail(`${key} is held by ${holderOf(kv.value)}, not released`);
  const r = await store.txn([{ key, modRevision: kv.modRevision }], [{ op: 'delete', key }, ...extra]);
  if (!r.succeeded) throw fail(`${key} changed while being released`);
  return true;
}

/** Releases a network's subnet and the gateway claim made with it. */
export const releaseSubnet = (store: Store, space: PlannedSpace): Promise<boolean> =>
  releaseClaim<SubnetClaim>(store, subnetKey(space.subnet), (c) => c.network === space.network, (c) => `network ${c.network}`, [{ op: 'delete', key: addressKey(space.network, space.gateway) }]);

export const releaseAddress = (store: Store, { networkId, ip, holder }: { networkId: string; ip: string; holder: string }): Promise<boolean> =>
  releaseClaim<AddressClaim>(store, addressKey(networkId, ip), (c) => c.holder === holder, (c) => c.holder);

/** VXLAN ids start above the 802.1Q VLAN ids, as Docker's do, and end at 2^24 - 1. */
const FIRST_VNI = 4096;
const LAST_VNI = 2 ** 24 - 1;

/** The lowest VNI no overlay network holds, as the store has them now (its claim is the caller's CAS create of `vniKey`). */
export async function freeVni(store: Store): Promise<number> {
  const held = new Set((await store.list(VNIS)).kvs.map((kv) => Number(idOf(kv.key))));
  for (let vni = FIRST_VNI; vni <= LAST_VNI; vni++) if (!held.has(vni)) return vni;
  throw fail('every VXLAN id is taken');
}
