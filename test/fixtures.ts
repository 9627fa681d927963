/** Records used across the DNS tests: two networks, a container on both, a VIP and a dnsrr service. */
export const id = (c: string): string => c.repeat(64).slice(0, 64);

export function records() {
  return {
    networks: [
      { name: 'app', subnet: '172.30.0.0/24', gateway: '172.30.0.1', ipv6Subnet: 'fd00:30::/64' },
      { name: 'db', subnet: '172.31.0.0/24' },
      // Endpoints with loopback addresses: dig -b 127.0.x.y asks "from" them, so scope by source is testable on lo.
      { name: 'lo-a', subnet: '127.0.10.0/24' },
      { name: 'lo-b', subnet: '127.0.20.0/24' },
    ],
    endpoints: [
      { id: id('a'), name: 'web', hostname: 'webhost', networks: { app: { ipv4: '172.30.0.2', ipv6: 'fd00:30::2', aliases: ['www', 'shared'] } } },
      { id: id('b'), name: 'web2', networks: { app: { ipv4: '172.30.0.3', aliases: ['shared'] } } },
      { id: id('c'), name: 'postgres', networks: { db: { ipv4: '172.31.0.2', aliases: ['pg'] } } },
      { id: id('d'), name: 'asker-a', networks: { 'lo-a': { ipv4: '127.0.10.2' } } },
      { id: id('e'), name: 'asker-b', networks: { 'lo-b': { ipv4: '127.0.20.2' } } },
      { id: id('f'), name: 'asker-ab', networks: { 'lo-a': { ipv4: '127.0.10.3' }, 'lo-b': { ipv4: '127.0.20.3' } } },
    ],
    services: [
      {
        name: 'api',
        network: 'app',
        mode: 'vip',
        vip: '172.30.0.100',
        ports: [{ name: 'http', protocol: 'tcp', port: 80 }],
        tasks: [
          { id: id('1'), ipv4: '172.30.0.11' },
          { id: id('2'), ipv4: '172.30.0.12' },
          { id: id('3'), ipv4: '172.30.0.13', healthy: false },
        ],
      },
      {
        name: 'cache',
        network: 'app',
        mode: 'dnsrr',
        ports: [{ name: 'redis', protocol: 'tcp', port: 6379 }],
        tasks: [
          { id: id('4'), ipv4: '172.30.0.21' },
          { id: id('5'), ipv4: '172.30.0.22' },
          { id: id('6'), ipv4: '172.30.0.23' },
          { id: id('7'), ipv4: '172.30.0.24', draining: true },
        ],
      },
    ],
  };
}
