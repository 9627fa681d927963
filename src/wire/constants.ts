/** Numeric codes from RFC 1035, 2671/6891 and 2782 that the wire layer and resolvers share. */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (12-bit) rcode: the high 8 bits travel in the OPT record. */
  BADVERS: 16,
} as const;

export const QType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const;

export const QClass = { IN: 1, ANY: 255 } as const;

/** Header flag bits within the 16-bit flags word. */
export const Flag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  /** Checking disabled (RFC 4035 3.2.2): the asker validates itself. */
  CD: 0x0010,
} as const;

/** The UDP payload size tsnet advertises and honours (DNS flag day 2020). */
export const EDNS_UDP_SIZE = 1232;
/** Classic DNS limit for a UDP answer to a query without EDNS. */
export const PLAIN_UDP_SIZE = 512;

export const rcodeName = (rcode: number): string =>
  ({ 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 16: 'BADVERS' })[rcode] ??
  `RCODE${rcode}`;

const typeNames: Record<number, string> = Object.fromEntries(Object.entries(QType).map(([k, v]) => [v, k]));
export const typeName = (type: number): string => typeNames[type] ?? `TYPE${type}`;
