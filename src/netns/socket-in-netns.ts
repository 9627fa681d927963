import { isIPv6 } from 'node:net';
import { AF_INET, AF_INET6, bind, check, close, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, sockaddr, socket } from './libc.js';
import { inNetns } from './netns.js';

/**
 * A socket created inside the namespace at `netns` (UDP bound to an ephemeral port, TCP left
 * unbound), for Node to adopt with `bind({ fd })` / `new net.Socket({ fd })`: traffic on it
 * leaves from that namespace, as a sandbox's own `--dns` servers must be asked.
 */
export function socketInNetns(netns: string, kind: 'udp' | 'tcp', family: 4 | 6): number {
  return inNetns(netns, () => {
    const fd = check(socket(family === 4 ? AF_INET : AF_INET6, (kind === 'udp' ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), `socket in ${netns}`);
    if (kind === 'tcp') return fd;
    try {
      const { sa } = sockaddr(family === 4 ? '0.0.0.0' : '::', 0);
      check(bind(fd, sa, sa.length), `bind udp in ${netns}`);
      return fd;
    } catch (err) {
      close(fd);
      throw err;
    }
  });
}

export const familyOf = (address: string): 4 | 6 => (isIPv6(address) ? 6 : 4);
