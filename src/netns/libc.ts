import koffi from 'koffi';
import { isIPv6 } from 'node:net';
import { constants } from 'node:os';
import { addressKey } from '../registry/address.js';

/**
 * The few libc calls that Node has no API for: entering a network namespace (setns applies to
 * the calling thread, so it must wrap a synchronous socket+bind), raw socket set-up and flock(2).
 */
const libc = koffi.load('libc.so.6');

export const CLONE_NEWNET = 0x40000000;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_RCVBUF = 8;
export const SO_RCVBUFFORCE = 33;
export const EPERM = 1;
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const IFF_UP = 0x1;

export const setns = libc.func('int setns(int fd, int nstype)');
export const socket = libc.func('int socket(int domain, int type, int protocol)');
export const bind = libc.func('int bind(int fd, const uint8_t *addr, uint32_t len)');
export const listen = libc.func('int listen(int fd, int backlog)');
export const close = libc.func('int close(int fd)');
export const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const int *value, uint32_t len)');
export const ioctl = libc.func('int ioctl(int fd, unsigned long request, uint8_t *arg)');
export const flock = libc.func('int flock(int fd, int operation)');
/** The index of link `name` in the calling thread's namespace, 0 when there is none. */
export const ifNameToIndex = libc.func('unsigned int if_nametoindex(const char *ifname)') as (name: string) => number;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const EWOULDBLOCK = 11;
const strerror = libc.func('const char *strerror(int errnum)');

const errnoNames = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** An error from a libc call, with errno's name (as Node's own errors carry it) and number. */
export class LibcError extends Error {
  constructor(
    what: string,
    readonly errno: number,
  ) {
    super(`${what}: ${errnoNames.get(errno) ?? 'errno'} ${strerror(errno) as string} (errno ${errno})`);
  }
}

/** Throws a LibcError naming what the call was doing when `rc` is negative. */
export function check(rc: number, what: string): number {
  if (rc >= 0) return rc;
  throw new LibcError(what, koffi.errno());
}

/** A struct sockaddr_in for an IPv4 address and port. */
export function sockaddrIn(address: string, port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  address.split('.').forEach((octet, i) => (sa[4 + i] = Number(octet)));
  return sa;
}

/** A struct sockaddr_in6 for an IPv6 address (no zone) and port. */
function sockaddrIn6(address: string, port: number): Buffer {
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  Buffer.from(addressKey(address)!, 'hex').copy(sa, 8);
  return sa;
}

/** The sockaddr for `address` (IPv4 or IPv6) and its family. */
export const sockaddr = (address: string, port: number): { family: number; sa: Buffer } =>
  isIPv6(address) ? { family: AF_INET6, sa: sockaddrIn6(address, port) } : { family: AF_INET, sa: sockaddrIn(address, port) };

export const send = libc.func('long send(int fd, const uint8_t *buf, unsigned long len, int flags)');
export const recv = libc.func('long recv(int fd, _Out_ uint8_t *buf, unsigned long len, int flags)');
