import { isIPv4, isIPv6 } from 'node:net';
import { addressKey } from '../../registry/address.js';

/** An IPv4 or IPv6 prefix, held as BigInts so one code path serves both families. */
export class Cidr {
  private constructor(
    readonly family: 4 | 6,
    /** The network address. */
    readonly base: bigint,
    readonly bits: number,
  ) {}

  static parse(text: string): Cidr {
    const [addr = '', bits = '', ...rest] = text.split('/');
    const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
    const width = family === 4 ? 32 : 128;
    if (family === 0 || rest.length > 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > width) {
      throw new Error(`${JSON.stringify(text)} is not a subnet in CIDR form (like 172.30.0.0/24)`);
    }
    const n = toBigInt(addr);
    const hostBits = BigInt(width - Number(bits));
    return new Cidr(family, (n >> hostBits) << hostBits, Number(bits));
  }

  get width(): number {
    return this.family === 4 ? 32 : 128;
  }

  get size(): bigint {
    return 1n << BigInt(this.width - this.bits);
  }

  get last(): bigint {
    return this.base + this.size - 1n;
  }

  contains(addr: string | bigint): boolean {
    if (typeof addr === 'string' && (isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0) !== this.family) return false;
    const n = typeof addr === 'string' ? toBigInt(addr) : addr;
    return n >= this.base && n <= this.last;
  }

  overlaps(other: Cidr): boolean {
    return this.family === other.family && this.base <= other.last && other.base <= this.last;
  }

  /** The address `offset` places into the prefix, as text. */
  at(offset: bigint): string {
    return fromBigInt(this.base + offset, this.family);
  }

  toString(): string {
    return `${fromBigInt(this.base, this.family)}/${this.bits}`;
  }
}

export function toBigInt(addr: string): bigint {
  if (isIPv4(addr)) return addr.split('.').reduce((n, o) => (n << 8n) | BigInt(o), 0n);
  return BigInt(`0x${addressKey(addr)!}`);
}

export function fromBigInt(n: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
  const hex = n.toString(16).padStart(32, '0');
  const groups = hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
