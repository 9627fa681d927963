import test from 'ava';
import { decodeDestination, decodeService, encodeDestination, encodeService, IpvsCmd, ipvsRequest } from './ipvs.js';
import { IpvsClient } from './ipvs-socket.js';

/** Hex with spaces and comments stripped: the expected bytes, written out by hand from linux/ip_vs.h. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');

const tcpService = { family: 4 as const, protocol: 'tcp' as const, address: '10.0.0.1', port: 80, scheduler: 'rr' };

test('a TCP service encodes to the IPVS_CMD_ATTR_SERVICE layout of linux/ip_vs.h, byte for byte', (t) => {
  t.deepEqual(
    encodeService(tcpService),
    hex(`
      5400 0180                     # len 84, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
      0600 0100 0200 0000           # IPVS_SVC_ATTR_AF u16 AF_INET, padded
      0600 0200 0600 0000           # IPVS_SVC_ATTR_PROTOCOL u16 IPPROTO_TCP
      1400 0300 0a000001 000000000000000000000000   # IPVS_SVC_ATTR_ADDR nf_inet_addr
      0600 0400 0050 0000           # IPVS_SVC_ATTR_PORT be16 80
      0700 0600 727200 00           # IPVS_SVC_ATTR_SCHED_NAME "rr\\0"
      0c00 0700 00000000 ffffffff   # IPVS_SVC_ATTR_FLAGS struct ip_vs_flags {flags, mask}
      0800 0800 00000000            # IPVS_SVC_ATTR_TIMEOUT u32
      0800 0900 ffffffff            # IPVS_SVC_ATTR_NETMASK u32
    `),
  );
});

test('a firewall-mark service carries FWMARK instead of protocol, address and port', (t) => {
  const b = encodeService({ family: 4, fwmark: 256, scheduler: 'wrr' });
  t.deepEqual(b.subarray(0, 20), hex('3800 0180 0600 0100 0200 0000 0800 0500 00010000'));
});

test('a destination encodes to the IPVS_CMD_ATTR_DEST layout, weight 0 to drain', (t) => {
  t.deepEqual(
    encodeDestination({ address: '10.0.0.11', port: 8080, weight: 0 }, 4),
    hex(`
      4800 0280                     # len 72, IPVS_CMD_ATTR_DEST | NLA_F_NESTED
      1400 0100 0a00000b 000000000000000000000000   # IPVS_DEST_ATTR_ADDR
      0600 0200 1f90 0000           # IPVS_DEST_ATTR_PORT be16 8080
      0800 0300 00000000            # IPVS_DEST_ATTR_FWD_METHOD IP_VS_CONN_F_MASQ
      0800 0400 00000000            # IPVS_DEST_ATTR_WEIGHT 0
      0800 0500 00000000            # IPVS_DEST_ATTR_U_THRESH
      0800 0600 00000000            # IPVS_DEST_ATTR_L_THRESH
      0600 0b00 0200 0000           # IPVS_DEST_ATTR_ADDR_FAMILY AF_INET
    `),
  );
});

test('a request is nlmsghdr + genlmsghdr(cmd, version 1) + attributes', (t) => {
  const msg = ipvsRequest({ family: 0x1d, seq: 7, cmd: IpvsCmd.NEW_DEST, service: tcpService, dest: { address: '10.0.0.11', port: 80, weight: 3 } });
  t.is(msg.readUInt32LE(0), msg.length);
  t.is(msg.readUInt16LE(4), 0x1d, 'nlmsg_type is the family id');
  t.is(msg.readUInt16LE(6), 0x1 | 0x4, 'NLM_F_REQUEST | NLM_F_ACK');
  t.is(msg.readUInt32LE(8), 7);
  t.deepEqual([msg[16], msg[17], msg.readUInt16LE(18)], [IpvsCmd.NEW_DEST, 1, 0]);
  t.is(msg.length, 16 + 4 + 84 + 72);
  const dump = ipvsRequest({ family: 0x1d, seq: 8, cmd: IpvsCmd.GET_SERVICE, dump: true });
  t.is(dump.readUInt16LE(6), 0x1 | 0x300, 'NLM_F_REQUEST | NLM_F_DUMP');
});

test('services and destinations decode from what they encode to (IPv4 and IPv6)', (t) => {
  const payload = (attrs: Buffer) => Buffer.concat([hex('04010000'), attrs]);
  t.deepEqual(decodeService(payload(encodeService(tcpService))), { ...tcpService, timeout: 0 });
  const v6 = { family: 6 as const, protocol: 'udp' as const, address: 'fd00:0:0:0:0:0:0:64', port: 53, scheduler: 'wrr', timeout: 30 };
  t.deepEqual(decodeService(payload(encodeService(v6))), v6);
  t.deepEqual(decodeDestination(payload(encodeDestination({ address: '10.0.0.12', port: 80, weight: 5, fwdMethod: 'route' }, 4))), {
    address: '10.0.0.12',
    port: 80,
    weight: 5,
    fwdMethod: 'route',
    activeConns: 0,
    inactiveConns: 0,
  });
});

test('opening IPVS on a kernel without it fails with a clear error (or works where the kernel has it)', (t) => {
  let client: IpvsClient | undefined;
  try {
    client = IpvsClient.open();
  } catch (err) {
    t.regex((err as Error).message, /this kernel has no IPVS .*use the nftables backend/);
    return;
  }
  t.true(client.family > 0x10, 'a real family id');
  t.true(Array.isArray(client.services()));
  client.close();
});
