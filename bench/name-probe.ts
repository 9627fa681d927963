import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { namedNetns } from '../src/netns/netns.js';
import { socketInNetns } from '../src/netns/socket-in-netns.js';

/**
 * Asks 127.0.0.11:53 inside namespace `netns` for a name's A record, one query at a time, as
 * fast as the answers come: `until` resolves at the first answer that has (or lacks) the name,
 * with the time of that answer (process.hrtime, ns), so a caller can subtract the time of its
 * change, and how many queries it took (1: the first query asked after the change showed it).
 */
export interface NameProbe {
  until(name: string, present: boolean, timeoutMs?: number): Promise<{ at: bigint; queries: number }>;
  close(): void;
}

export async function nameProbe(netns: string): Promise<NameProbe> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ fd: socketInNetns(namedNetns(netns), 'udp', 4) }, () => resolve());
  });
  let id = 0;
  const ask = (name: string, waitMs: number): Promise<boolean | undefined> =>
    new Promise((resolve) => {
      id = (id + 1) & 0xffff;
      const mine = id;
      const timer = setTimeout(() => done(undefined), waitMs);
      const onMessage = (msg: Buffer): void => {
        if (msg.readUInt16BE(0) !== mine) return;
        const reply = dnsPacket.decode(msg);
        done((reply.answers ?? []).some((a) => a.type === 'A'));
      };
      const done = (v: boolean | undefined): void => {
        clearTimeout(timer);
        socket.off('message', onMessage);
        resolve(v);
      };
      socket.on('message', onMessage);
      socket.send(dnsPacket.encode({ id: mine, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] }), 53, '127.0.0.11');
    });
  return {
    until: async (name, present, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (let queries = 1; Date.now() < deadline; queries++) {
        if ((await ask(name, 50)) === present) return { at: process.hrtime.bigint(), queries };
      }
      throw new Error(`${name} still ${present ? 'absent' : 'present'} in ${netns} after ${timeoutMs} ms`);
    },
    close: () => socket.close(),
  };
}
