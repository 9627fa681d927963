import { AF_INET, bind, check, close, EPERM, IFF_UP, ioctl, LibcError, listen, setsockopt, SIOCGIFFLAGS, SIOCSIFFLAGS, SO_RCVBUF, SO_RCVBUFFORCE, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, sockaddr, socket } from './libc.js';
import { inNetns } from './netns.js';

export interface ListenFds {
  udp: number;
  tcp: number;
}

/** Sets `lo` up in the current namespace: 127.0.0.11 lives there, and a fresh netns has it down. */
function loopbackUp(): void {
  const fd = check(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket for ioctl');
  try {
    const ifreq = Buffer.alloc(40);
    ifreq.write('lo', 0, 'latin1');
    check(ioctl(fd, SIOCGIFFLAGS, ifreq), 'SIOCGIFFLAGS lo');
    const flags = ifreq.readUInt16LE(16);
    if (flags & IFF_UP) return;
    ifreq.writeUInt16LE(flags | IFF_UP, 16);
    check(ioctl(fd, SIOCSIFFLAGS, ifreq), 'SIOCSIFFLAGS lo up');
  } finally {
    close(fd);
  }
}

/**
 * Asks for `bytes` of receive queue: past net.core.rmem_max with SO_RCVBUFFORCE when the
 * process may (CAP_NET_ADMIN, as unbound's so-rcvbuf does), else as much as SO_RCVBUF gives.
 * A deep queue rides out a burst or a GC pause instead of dropping whatever arrives meanwhile.
 */
function sizeReceiveQueue(fd: number, bytes: number): void {
  const value = Int32Array.of(bytes);
  try {
    check(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, value, 4), 'SO_RCVBUFFORCE');
  } catch (err) {
    if (!(err instanceof LibcError && err.errno === EPERM)) throw err;
    check(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4), 'SO_RCVBUF');
  }
}

/** A non-blocking socket bound to `address:port` (TCP also listening), for Node to adopt. */
function boundSocket(type: number, address: string, port: number, receiveQueue?: number): number {
  const { family, sa } = sockaddr(address, port);
  const kind = type === SOCK_STREAM ? 'tcp' : 'udp';
  const fd = check(socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), `${kind} ${address}:${port}: socket`);
  try {
    if (type === SOCK_STREAM) check(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, Int32Array.of(1), 4), 'SO_REUSEADDR');
    if (receiveQueue !== undefined) sizeReceiveQueue(fd, receiveQueue);
    check(bind(fd, sa, sa.length), `${kind} ${address}:${port}: bind`);
    if (type === SOCK_STREAM) check(listen(fd, 511), `${kind} ${address}:${port}: listen`);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

/** A bound UDP socket in this namespace with a receive queue of `receiveQueue` bytes. */
export const boundUdpFd = (address: string, port: number, receiveQueue: number): number => boundSocket(SOCK_DGRAM, address, port, receiveQueue);

/**
 * Opens a UDP and a listening TCP socket on `address:port` inside the namespace at `netns`,
 * bringing its loopback up first. The fds belong to the caller (Node adopts them with
 * `bind({ fd })` / `listen({ fd })`); the sockets stay in that namespace wherever they are used.
 */
export function openListenFds(netns: string, address: string, port: number, receiveQueue: number): ListenFds {
  return inNetns(netns, () => {
    loopbackUp();
    const udp = boundUdpFd(address, port, receiveQueue);
    try {
      return { udp, tcp: boundSocket(SOCK_STREAM, address, port) };
    } catch (err) {
      close(udp);
      throw err;
    }
  });
}
