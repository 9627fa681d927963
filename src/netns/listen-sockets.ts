import { AF_INET, bind, check, close, IFF_UP, ioctl, listen, setsockopt, SIOCGIFFLAGS, SIOCSIFFLAGS, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, sockaddrIn, socket } from './libc.js';
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

function boundSocket(type: number, address: string, port: number): number {
  const fd = check(socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket');
  try {
    if (type === SOCK_STREAM) check(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, Int32Array.of(1), 4), 'SO_REUSEADDR');
    const sa = sockaddrIn(address, port);
    check(bind(fd, sa, sa.length), `bind ${type === SOCK_STREAM ? 'tcp' : 'udp'} ${address}:${port}`);
    if (type === SOCK_STREAM) check(listen(fd, 511), `listen ${address}:${port}`);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

/**
 * Opens a UDP and a listening TCP socket on `address:port` inside the namespace at `netns`,
 * bringing its loopback up first. The fds belong to the caller (Node adopts them with
 * `bind({ fd })` / `listen({ fd })`); the sockets stay in that namespace wherever they are used.
 */
export function openListenFds(netns: string, address: string, port: number): ListenFds {
  return inNetns(netns, () => {
    loopbackUp();
    const udp = boundSocket(SOCK_DGRAM, address, port);
    try {
      return { udp, tcp: boundSocket(SOCK_STREAM, address, port) };
    } catch (err) {
      close(udp);
      throw err;
    }
  });
}
