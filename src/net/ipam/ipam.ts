import { isIPv6 } from 'node:net';
import { Cidr, toBigInt } from './cidr.js';

/** Docker's default address pools: 172.17-31.0.0/16, then 192.168.0-240.0/20. */
export const DEFAULT_POOLS: readonly string[] = [
  ...Array.from({ length: 15 }, (_, i) => `172.${17 + i}.0.0/16`),
  ...Array.from({ length: 16 }, (_, i) => `192.168.${i * 16}.0/20`),
];

/** What IPAM knows of one network's address space. */
export interface AddressSpace {
  network: string;
  subnet: string;
  gateway?: string;
  /** Addresses for endpoints come only from here (`--ip-range`); default the whole subnet. */
  ipRange?: string;
}

/** A subnet the host itself uses (an address's or a route's), with its interface. */
export interface HostSubnet {
  subnet: string;
  dev: string;
}

/**
 * Ranges no network may take: packets to them are never routed to a bridge (loopback,
 * link-local, multicast, "this network", reserved and broadcast; ::1, fe80::/10, ff00::/8).
 */
const SPECIAL: readonly [string, string][] = [
  ['0.0.0.0/8', '"this network"'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/127', 'unspecified or loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
];

/** A network's address space once planned: subnet and gateway always known. */
export type PlannedSpace = AddressSpace & { subnet: string; gateway: string };

export interface SubnetRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
}

/**
 * Checks a requested subnet, or picks the first default pool free of every existing one, and
 * fills in the gateway (first host address) — with errors that name the clash.
 */
export function planSubnet(
  network: string,
  req: SubnetRequest,
  existing: readonly AddressSpace[],
  { host = [], pools = DEFAULT_POOLS }: { host?: readonly HostSubnet[]; pools?: readonly string[] } = {},
): PlannedSpace {
  const taken = [
    ...existing.map((s) => ({ name: `network ${s.network}`, cidr: Cidr.parse(s.subnet) })),
    ...host.map((h) => ({ name: `the host's ${h.dev}`, cidr: Cidr.parse(h.subnet) })),
  ];
  let cidr: Cidr;
  if (req.subnet !== undefined) {
    cidr = Cidr.parse(req.subnet);
    if (cidr.toString() !== req.subnet) throw new Error(`subnet ${req.subnet} has host bits set (did you mean ${cidr.toString()}?)`);
    const special = SPECIAL.find(([range]) => Cidr.parse(range).overlaps(cidr));
    if (special !== undefined) throw new Error(`subnet ${req.subnet} is in the ${special[1]} range ${special[0]}`);
    const clash = taken.find((t) => t.cidr.overlaps(cidr));
    if (clash !== undefined) throw new Error(`subnet ${req.subnet} overlaps ${clash.name} (${clash.cidr.toString()})`);
  } else {
    const free = pools.map((p) => Cidr.parse(p)).find((p) => !taken.some((t) => t.cidr.overlaps(p)));
    if (free === undefined) throw new Error('all default address pools are in use: give --subnet');
    cidr = free;
  }
  if (cidr.size < 4n && cidr.family === 4) throw new Error(`subnet ${cidr.toString()} is too small (at most /30)`);
  const gateway = req.gateway ?? cidr.at(1n);
  if (!cidr.contains(gateway)) throw new Error(`gateway ${gateway} is outside subnet ${cidr.toString()}`);
  const g = toBigInt(gateway);
  if (g === cidr.base || (cidr.family === 4 && g === cidr.last)) throw new Error(`gateway ${gateway} is the ${g === cidr.base ? 'network' : 'broadcast'} address of ${cidr.toString()}`);
  const space: PlannedSpace = { network, subnet: cidr.toString(), gateway };
  if (req.ipRange !== undefined) {
    const range = Cidr.parse(req.ipRange);
    if (range.family !== cidr.family || range.base < cidr.base || range.last > cidr.last) {
      throw new Error(`ip-range ${req.ipRange} is outside subnet ${cidr.toString()}`);
    }
    space.ipRange = range.toString();
  }
  return space;
}

/**
 * An address for a new endpoint: the requested one after checks (in canonical form, so that
 * `fd00:0::2` and `fd00::2` are one address), or the lowest free one in the range — never the
 * network address, the gateway or (IPv4) the broadcast address.
 */
export function allocateAddress(space: AddressSpace, inUse: ReadonlySet<string>, requested?: string): string {
  if (requested === undefined) {
    const { value } = freeAddresses(space, inUse).next();
    if (value === undefined) throw new Error(`no free address left on ${space.network} (${space.ipRange ?? space.subnet})`);
    return value;
  }
  const subnet = Cidr.parse(space.subnet);
  if (!subnet.contains(requested)) throw new Error(`address ${requested} is outside ${space.network}'s subnet ${space.subnet}`);
  const n = toBigInt(requested);
  if (reservedIn(space, subnet).has(n)) throw new Error(`address ${requested} is reserved on ${space.network} (network, gateway or broadcast)`);
  if ([...inUse].some((a) => subnet.contains(a) && toBigInt(a) === n)) throw new Error(`address ${requested} is already in use on ${space.network}`);
  return subnet.at(n - subnet.base);
}

/**
 * The free addresses of a space's range, lowest first, found lazily: taking the first few of a
 * /64 walks only past the addresses in use.
 */
export function* freeAddresses(space: AddressSpace, inUse: ReadonlySet<string>): Generator<string, void> {
  const subnet = Cidr.parse(space.subnet);
  const reserved = reservedIn(space, subnet);
  const range = space.ipRange === undefined ? subnet : Cidr.parse(space.ipRange);
  if (subnet.family === 4) return yield* freeIpv4(range, reserved, inUse);
  // Offsets into the range as numbers, and each address's number parsed once for all plans (the
  // other family's skipped unparsed): BigInts parsed, walked one by one and looked up in a set
  // cost 2.2 ms a plan beside 1000 sandboxes. A range past 2^53 addresses is walked that far.
  const base = range.base;
  const size = Number(range.size < 2n ** 53n ? range.size : 2n ** 53n);
  const taken = new Set<number>();
  for (const n of reserved) if (n >= base && n - base < size) taken.add(Number(n - base));
  for (const a of inUse) {
    const n = a.includes(':') ? ipv6Number(a) : undefined;
    if (n !== undefined && n >= base && n - base < size) taken.add(Number(n - base));
  }
  for (let i = 0; i < size; i++) if (!taken.has(i)) yield range.at(BigInt(i));
}

/**
 * The IPv4 walk in plain numbers, each candidate looked up as text: addresses in use are
 * canonical dotted quads (all that `isIPv4` accepts), so none needs parsing. With BigInts and
 * two parses of each address in use, the 1000th sandbox on a network waited 9 ms for its address.
 */
function* freeIpv4(range: Cidr, reserved: ReadonlySet<bigint>, inUse: ReadonlySet<string>): Generator<string, void> {
  const skip = new Set([...reserved].map(Number));
  const base = Number(range.base);
  const size = Number(range.size);
  for (let n = base; n < base + size; n++) {
    const text = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    if (!skip.has(n) && !inUse.has(text)) yield text;
  }
}

/** IPv6 addresses as numbers (toBigInt's), by their text; bounded, as the addresses a daemon has seen are. */
const ipv6Numbers = new Map<string, bigint>();
function ipv6Number(address: string): bigint | undefined {
  let n = ipv6Numbers.get(address);
  if (n === undefined) {
    if (!isIPv6(address)) return undefined;
    if (ipv6Numbers.size >= 65536) ipv6Numbers.clear();
    ipv6Numbers.set(address, (n = toBigInt(address)));
  }
  return n;
}

const reservedIn = (space: AddressSpace, subnet: Cidr): Set<bigint> =>
  new Set([subnet.base, ...(space.gateway === undefined ? [] : [toBigInt(space.gateway)]), ...(subnet.family === 4 ? [subnet.last] : [])]);
