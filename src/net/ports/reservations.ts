import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import type { PortMapping } from './spec.js';

/** What a reservation is of: the host side of a published port. */
export type HostPort = Pick<PortMapping, 'hostIp' | 'hostPort' | 'protocol'>;

/**
 * Holds a socket on every published host port, as docker-proxy does: the port cannot be taken
 * by anyone else while it is published, and asking for a taken one fails at once. A host port
 * of 0 is given a free one by the kernel.
 */
export class PortReservations {
  readonly #held = new Map<string, Server | UdpSocket>();

  static key = (m: HostPort): string => `${m.protocol}/${m.hostIp}:${m.hostPort}`;

  /** Reserves `m`'s host port; returns the mapping with the port filled in. */
  async reserve<M extends HostPort>(m: M): Promise<M> {
    const holder = m.protocol === 'tcp' ? createServer() : createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      holder.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE' ? `Bind for ${m.hostIp}:${m.hostPort} failed: port is already allocated` : `Bind for ${m.hostIp}:${m.hostPort} failed: ${err.message}`)),
      );
      const done = (): void => {
        const addr = holder.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
      };
      if (m.protocol === 'tcp') (holder as Server).listen({ host: m.hostIp, port: m.hostPort, exclusive: true }, done);
      else (holder as UdpSocket).bind({ address: m.hostIp, port: m.hostPort, exclusive: true }, done);
    });
    const reserved = { ...m, hostPort: port };
    this.#held.set(PortReservations.key(reserved), holder);
    return reserved;
  }

  holds(m: HostPort): boolean {
    return this.#held.has(PortReservations.key(m));
  }

  release(m: HostPort): void {
    const holder = this.#held.get(PortReservations.key(m));
    holder?.close();
    this.#held.delete(PortReservations.key(m));
  }
}
