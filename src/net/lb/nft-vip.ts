import { comment, ipv4, join, nft, port, protocol, render, table } from '../nft/values.js';

/** A VIP service as the in-sandbox load balancer needs it. */
export interface VipService {
  name: string;
  vip: string;
  /** Ports to balance; none means every port of the VIP (the destination port is kept). */
  ports: readonly { protocol: 'tcp' | 'udp'; port: number }[];
  /** Serving backends with their weights. */
  backends: readonly { ip: string; weight: number }[];
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Map slots for weighted random choice: each backend weight/g times (g the weights' gcd). */
function slots(backends: VipService['backends']): string[] {
  const live = backends.filter((b) => b.weight > 0);
  const g = live.reduce((acc, b) => gcd(acc, b.weight), 0) || 1;
  return live.flatMap((b) => new Array<string>(b.weight / g).fill(b.ip));
}

/**
 * The load-balancing table inside one sandbox's namespace, as one `nft -f` file: connections it
 * opens to a VIP are DNATed to a backend picked by `numgen random mod N` over weighted slots, in
 * the output hook. Conntrack keeps an established connection on its backend when the set
 * changes; a drained task has no slot, so it gets no new connection. No backend: rejected.
 */
export function renderVipTable(name: string, services: readonly VipService[]): string {
  const t = table(name);
  const rules = services.flatMap((s) => {
    const vip = ipv4(s.vip);
    const matches = s.ports.length === 0 ? [nft`ip daddr ${vip}`] : s.ports.map((p) => nft`ip daddr ${vip} ${protocol(p.protocol)} dport ${port(p.port)}`);
    const list = slots(s.backends);
    const action = list.length === 0 ? nft`reject` : nft`dnat ip to numgen random mod ${list.length} map { ${join(list.map((ip, i) => nft`${i} : ${ipv4(ip)}`), ', ')} }`;
    return matches.map((m) => nft`    ${m} ${action} comment ${comment(s.name)}`);
  });
  return render([
    nft`table ip ${t} {}`,
    nft`flush table ip ${t}`,
    nft`table ip ${t} {`,
    nft`  chain output {`,
    nft`    type nat hook output priority -100; policy accept;`,
    ...rules,
    nft`  }`,
    nft`}`,
  ]);
}
