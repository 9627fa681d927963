// A stand-in upstream for trying tsnet-dns without touching the machine's own resolver:
// answers A/AAAA for any name under example.test with loopback addresses, NXDOMAIN (with an
// SOA, so it is cached) for everything else. Usage: node examples/upstream.mjs [PORT]
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const port = Number(process.argv[2] ?? 5300);
const socket = createSocket('udp4');
const soa = { name: 'example.test', type: 'SOA', ttl: 60, data: { mname: 'ns.example.test', rname: 'hostmaster.example.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: 30 } };

socket.on('message', (msg, rinfo) => {
  let query;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return;
  }
  const q = query.questions?.[0];
  if (q === undefined) return;
  const ours = q.name.toLowerCase().endsWith('example.test');
  const answers = !ours ? [] : q.type === 'A' ? [{ name: q.name, type: 'A', ttl: 300, data: '127.0.0.53' }] : q.type === 'AAAA' ? [{ name: q.name, type: 'AAAA', ttl: 300, data: '::1' }] : [];
  const reply = dnsPacket.encode({
    id: query.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (ours ? 0 : 3),
    questions: [q],
    answers,
    authorities: answers.length === 0 ? [soa] : [],
  });
  socket.send(reply, rinfo.port, rinfo.address);
});
socket.bind(port, '127.0.0.1', () => console.log(`example upstream on 127.0.0.1:${port}`));
